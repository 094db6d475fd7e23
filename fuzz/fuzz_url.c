/* libFuzzer target: csms_url_parse, then csms_canonical_uri / csms_canonical_query on what it
 * found, and both canonicalisers on the raw input too. Checks the output alphabet: the
 * canonical forms may hold only unreserved characters, %XX (upper-case hex), '/' (URI) or
 * '=' and '&' (query), and the canonical URI always ends with '/'. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/sign.h"

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

static void check_encoded(const buf_t *b, const char *extra) {
  for (size_t i = 0; i < b->n; i++) {
    unsigned char c = (unsigned char)b->p[i];
    if (unreserved(c) || (c && strchr(extra, c))) continue;
    if (c == '%' && i + 2 < b->n && b->p[i + 1] && strchr("0123456789ABCDEF", b->p[i + 1]) &&
        b->p[i + 2] && strchr("0123456789ABCDEF", b->p[i + 2])) {
      i += 2;
      continue;
    }
    abort(); /* a byte outside the canonical alphabet */
  }
}

/* Fresh, never-allocated buffers: csms_uri_encode once computed NULL + 0 on one with n == 0
 * (fixed in 3b00881; fuzz/corpus/url/regress-empty-null-buffer is the input). */
static void canon(const char *path, size_t pn, const char *q, size_t qn) {
  buf_t u = BUF_INIT, cq = BUF_INIT;
  if (csms_canonical_uri(&u, path, pn) == 0) {
    if (u.n == 0 || u.p[u.n - 1] != '/') abort();
    check_encoded(&u, "/");
  }
  if (csms_canonical_query(&cq, q, qn) == 0) check_encoded(&cq, "=&");
  buf_free(&u);
  buf_free(&cq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A private copy, exactly size bytes, so ASan sees any read past the end. */
  char *s = malloc(size ? size : 1);
  if (!s) return 0;
  memcpy(s, data, size);
  csms_url_t u;
  const char *err = NULL;
  if (csms_url_parse(s, size, &u, &err) == 0) {
    /* The parts lie inside the input, in order. */
    if (u.authority.n == 0 || u.path.p < s || u.path.p + u.path.n > s + size ||
        u.query.p + u.query.n > s + size)
      abort();
    canon(u.path.p, u.path.n, u.query.p, u.query.n);
  } else if (!err) {
    abort();
  }
  canon(s, size, s, size);
  free(s);
  return 0;
}

/* libFuzzer target: the whole csms_sign over a request split from the input:
 *   line 1: method, line 2: URL, then "Name:Value" header lines up to an empty line,
 *   the rest: the body. A URL that does not parse is replaced by a fixed one so the
 *   header and body paths stay reachable.
 * The signer is kept across inputs, as a client keeps it, and its cache of canonical headers
 * must never change a result: each input is signed again by it with the X-Sdk-Date value
 * swapped (a cache hit when the first signing succeeded) and by a fresh signer, and the two
 * must agree on the result, the Authorization and the canonical request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../src/sign.h"

#define MAX_HEADERS 64

static csms_signer_t *signer;

static const char *next_line(const char *p, const char *end, slice_t *line) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  line->p = p;
  line->n = (size_t)((nl ? nl : end) - p);
  return nl ? nl + 1 : end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!signer) signer = csms_signer_new("AccessKey", 9, "SecretKey", 9);
  if (!signer) abort();
  char *s = malloc(size ? size : 1);
  if (!s) return 0;
  memcpy(s, data, size);
  const char *p = s, *end = s + size;
  slice_t method, url_s, line;
  p = next_line(p, end, &method);
  p = next_line(p, end, &url_s);
  csms_header_t h[MAX_HEADERS];
  size_t nh = 0;
  while (p < end && nh < MAX_HEADERS) {
    p = next_line(p, end, &line);
    if (line.n == 0) break;
    const char *colon = memchr(line.p, ':', line.n);
    h[nh].name.p = line.p;
    h[nh].name.n = colon ? (size_t)(colon - line.p) : line.n;
    h[nh].value.p = colon ? colon + 1 : line.p + line.n;
    h[nh].value.n = colon ? (size_t)(line.p + line.n - colon - 1) : 0;
    nh++;
  }
  slice_t body = {p, (size_t)(end - p)};
  csms_url_t url;
  const char *err = NULL;
  static const char fixed[] = "https://service.endpoint.myhuaweicloud.com/resources?size=1";
  if (csms_url_parse(url_s.p, url_s.n, &url, &err))
    if (csms_url_parse(fixed, sizeof fixed - 1, &url, &err)) abort();
  buf_t auth = BUF_INIT, canonical = BUF_INIT;
  err = NULL;
  int rc = csms_sign(signer, method, &url, h, nh, body, &auth, &canonical, &err);
  if (rc == 0) {
    static const char pre[] = "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=";
    if (err || auth.n < sizeof pre - 1 + 64 || memcmp(auth.p, pre, sizeof pre - 1)) abort();
    if (!memchr(canonical.p, '\n', canonical.n)) abort();
  } else if (!err) {
    abort();
  }
  for (size_t i = 0; i < nh; i++)
    if (h[i].name.n == 10 && strncasecmp(h[i].name.p, "x-sdk-date", 10) == 0)
      h[i].value.p = "20991231T235959Z", h[i].value.n = 16;
  csms_signer_t *fresh = csms_signer_new("AccessKey", 9, "SecretKey", 9);
  if (!fresh) abort();
  buf_t a1 = BUF_INIT, c1 = BUF_INIT, a2 = BUF_INIT, c2 = BUF_INIT;
  const char *e1 = NULL, *e2 = NULL;
  int r1 = csms_sign(signer, method, &url, h, nh, body, &a1, &c1, &e1);
  int r2 = csms_sign(fresh, method, &url, h, nh, body, &a2, &c2, &e2);
  if (r1 != r2 || a1.n != a2.n || c1.n != c2.n || (a1.n && memcmp(a1.p, a2.p, a1.n)) ||
      (c1.n && memcmp(c1.p, c2.p, c1.n)) || (r1 && strcmp(e1, e2)))
    abort();
  csms_signer_free(fresh);
  buf_free(&a1);
  buf_free(&c1);
  buf_free(&a2);
  buf_free(&c2);
  buf_free(&auth);
  buf_free(&canonical);
  free(s);
  return 0;
}

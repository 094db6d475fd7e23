/* libFuzzer target: the whole csms_sign over a request split from the input:
 *   line 1: method, line 2: URL, then "Name:Value" header lines up to an empty line,
 *   the rest: the body. A URL that does not parse is replaced by a fixed one so the
 *   header and body paths stay reachable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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
  buf_free(&auth);
  buf_free(&canonical);
  free(s);
  return 0;
}

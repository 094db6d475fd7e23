#include "response.h"

#include <string.h>

int csms_response_header(csms_response_t *r, const char *line, size_t n) {
  if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) r->headers.n = 0; /* a new response (after 1xx) */
  while (n && (line[n - 1] == '\r' || line[n - 1] == '\n')) n--;
  if (r->headers.n + n + 1 > CSMS_MAX_HEADER_BYTES) {
    r->overflow = CSMS_RESPONSE_HEADERS_TOO_LARGE;
    return -1;
  }
  if (n && (buf_add(&r->headers, line, n) || buf_addc(&r->headers, '\n'))) return -1;
  return 0;
}

int csms_response_body(csms_response_t *r, const char *p, size_t n) {
  if (r->body.n + n > r->max_body) {
    r->overflow = CSMS_RESPONSE_BODY_TOO_LARGE;
    return -1;
  }
  return buf_add(&r->body, p, n);
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

int csms_response_field(const csms_response_t *r, size_t *pos, buf_t *name, slice_t *value) {
  const char *block = r->headers.p; /* NULL when no line was stored: no arithmetic on it then */
  while (block && *pos < r->headers.n) {
    const char *p = block + *pos, *end = block + r->headers.n;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = nl ? nl : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    *pos = (size_t)((nl ? nl + 1 : end) - block);
    if (!colon || colon == p) continue;
    name->n = 0;
    if (buf_reserve(name, (size_t)(colon - p))) return -1;
    for (const char *c = p; c < colon; c++)
      name->p[name->n++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c;
    const char *v = colon + 1, *ve = line_end;
    while (v < ve && is_blank(*v)) v++;
    while (ve > v && is_blank(ve[-1])) ve--;
    value->p = v;
    value->n = (size_t)(ve - v);
    return 1;
  }
  return 0;
}

void csms_response_free(csms_response_t *r) {
  buf_wipe_free(&r->body);
  buf_free(&r->headers);
}

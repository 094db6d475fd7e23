/* libFuzzer target: src/response.c, which reads the bytes any server sends. Linked as the
 * transport links it (no Lua, no libcurl):
 *   csms_response_header -- each raw header line as libcurl hands it over (with its CRLF),
 *   csms_response_body   -- body chunks against the max_response cap,
 *   csms_response_field  -- the header block read back as the name/value fields the client's
 *                           headers table is made of.
 * Input: byte 0 = flags (bit 0: repeat the header block until the 64 KiB cap trips; the other
 * bits are unused), byte 1 = body cap in 64-byte units (0 = 16 MiB), byte 2 = body chunk size,
 * then header lines up to an empty line, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/response.h"

/* The fields read back: each name non-empty, lower-case, without ':' or line breaks; each value
 * without line breaks or surrounding blanks and inside the block; one field per stored line
 * that has a ':' after at least one byte. */
static void check_fields(const csms_response_t *r) {
  size_t lines_with_name = 0;
  for (size_t i = 0, start = 0; i < r->headers.n; i++) {
    if (r->headers.p[i] != '\n') continue;
    const char *colon = memchr(r->headers.p + start, ':', i - start);
    if (colon && colon > r->headers.p + start) lines_with_name++;
    start = i + 1;
  }
  buf_t name = BUF_INIT;
  slice_t v;
  size_t pos = 0, fields = 0, last = 0;
  int rc;
  while ((rc = csms_response_field(r, &pos, &name, &v)) > 0) {
    fields++;
    if (pos <= last && fields > 1) abort(); /* always moves on */
    last = pos;
    if (name.n == 0) abort();
    for (size_t i = 0; i < name.n; i++)
      if ((name.p[i] >= 'A' && name.p[i] <= 'Z') || name.p[i] == ':' || name.p[i] == '\n') abort();
    if (v.n && (v.p < r->headers.p || v.p + v.n > r->headers.p + r->headers.n)) abort();
    if (memchr(v.p, '\n', v.n)) abort();
    if (v.n && (v.p[0] == ' ' || v.p[0] == '\t' || v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t'))
      abort();
  }
  if (rc < 0 || fields != lines_with_name) abort();
  buf_free(&name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  int flags = data[0];
  size_t cap = data[1] ? (size_t)data[1] * 64 : 16 * 1024 * 1024;
  size_t chunk = data[2] ? data[2] : 1;
  const char *p = (const char *)data + 3, *end = (const char *)data + size;

  csms_response_t r;
  memset(&r, 0, sizeof r);
  r.max_body = cap;

  /* Header lines, each with its terminator, as libcurl's header callback gets them. */
  const char *hstart = p;
  int stop = 0;
  while (p < end && !stop) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl + 1 : end;
    size_t n = (size_t)(le - p);
    char *line = malloc(n ? n : 1); /* exact size: ASan catches reads past the line */
    memcpy(line, p, n);
    if (csms_response_header(&r, line, n)) stop = 1;
    free(line);
    p = le;
    if (n == 1 || (n == 2 && p[-2] == '\r')) break; /* the empty line ends the headers */
  }
  const char *hend = p;
  if ((flags & 1) && !stop && hend > hstart) {
    /* The block again and again: with content and no status line (which starts a new
     * response) it must trip the 64 KiB cap, and within the number of copies that fit. */
    size_t n = (size_t)(hend - hstart), content = n;
    while (content && (hstart[content - 1] == '\r' || hstart[content - 1] == '\n')) content--;
    int status_line = content >= 5 && memcmp(hstart, "HTTP/", 5) == 0;
    if (content && !status_line) {
      size_t copies = CSMS_MAX_HEADER_BYTES / (content + 1) + 2;
      char *line = malloc(n); /* exact size, reused: the parser does not write to it */
      memcpy(line, hstart, n);
      for (size_t i = 0; i < copies && !stop; i++)
        if (csms_response_header(&r, line, n)) stop = 1;
      free(line);
      if (r.overflow != CSMS_RESPONSE_HEADERS_TOO_LARGE) abort();
    }
  }
  if (r.headers.n > CSMS_MAX_HEADER_BYTES) abort();

  /* The body in chunks; it must stop at the cap and never keep more. */
  int body_stopped = 0;
  while (p < end && !stop) {
    size_t n = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
    char *c = malloc(n);
    memcpy(c, p, n);
    int rc = csms_response_body(&r, c, n);
    free(c);
    if (rc) {
      body_stopped = 1;
      break;
    }
    p += n;
  }
  if (r.body.n > cap) abort();
  if (body_stopped && r.overflow != CSMS_RESPONSE_BODY_TOO_LARGE) abort();

  /* No header line at all is possible here (the Lua side once computed NULL + 0 then: fixed
   * in 3b00881; fuzz/corpus/http/regress-no-header-lines is the input). */
  check_fields(&r);
  csms_response_free(&r);
  return 0;
}

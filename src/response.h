/* An HTTP response as the transport receives it: header lines and body chunks kept under
 * caps, and the header block read back as name/value fields. Plain C: no Lua, no libcurl (the
 * transport feeds it from its callbacks; fuzz/fuzz_http.c feeds it hostile bytes). */
#ifndef CSMS_RESPONSE_H
#define CSMS_RESPONSE_H

#include <stddef.h>

#include "buf.h"

#define CSMS_MAX_HEADER_BYTES (64 * 1024) /* all header lines of a response together */

enum { CSMS_RESPONSE_OK, CSMS_RESPONSE_BODY_TOO_LARGE, CSMS_RESPONSE_HEADERS_TOO_LARGE };

typedef struct {
  buf_t body;     /* the body so far */
  buf_t headers;  /* header lines so far, without line ends, each followed by '\n' */
  size_t max_body;
  int overflow;   /* CSMS_RESPONSE_*: which cap stopped the response */
} csms_response_t;

/* One raw header line (with or without its CRLF). A status line ("HTTP/...") starts a new
 * response: the lines of an interim 1xx answer are dropped. Returns 0, or -1 when the response
 * must stop: over CSMS_MAX_HEADER_BYTES (overflow set) or out of memory. */
int csms_response_header(csms_response_t *r, const char *line, size_t n);

/* A body chunk. Returns 0, or -1 when the response must stop: over max_body (overflow set,
 * nothing of the chunk kept) or out of memory. */
int csms_response_body(csms_response_t *r, const char *p, size_t n);

/* The next "name: value" field of the header block, from *pos (start with 0): the name
 * lower-cased into *name (overwritten), the value with surrounding spaces and tabs removed.
 * Lines without ':' or with an empty name (the status line among them) are skipped. Returns 1
 * for a field, 0 at the end, -1 when memory runs out. */
int csms_response_field(const csms_response_t *r, size_t *pos, buf_t *name, slice_t *value);

/* Frees the buffers (the body wiped first: it may hold secrets). */
void csms_response_free(csms_response_t *r);

#endif

/* SDK-HMAC-SHA256 request signing, as Huawei Cloud's API gateway checks it.
 * Plain C with OpenSSL, no Lua: every function here reads caller bytes and is a fuzz target. */
#ifndef CSMS_SIGN_H
#define CSMS_SIGN_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

typedef struct {
  slice_t scheme;    /* "http" or "https", as written */
  slice_t authority; /* host[:port], as written (brackets kept for IPv6) */
  slice_t path;      /* from the first '/', possibly empty */
  slice_t query;     /* after '?', without it; possibly empty */
} csms_url_t;

typedef struct {
  slice_t name, value;
} csms_header_t;

/* Splits an absolute http(s) URL. Returns 0, or -1 with *err set to a static message. */
int csms_url_parse(const char *s, size_t n, csms_url_t *u, const char **err);

/* Canonical URI: percent-decode once, encode each '/'-separated segment, end with '/'. */
int csms_canonical_uri(buf_t *out, const char *path, size_t n);

/* Canonical query: decode keys and values, drop empty keys, sort by key then value (bytes),
 * emit k=v joined by '&' with both sides encoded. */
int csms_canonical_query(buf_t *out, const char *q, size_t n);

/* Appends the unreserved-set percent-encoding of s (space is %20, hex upper-case). */
int csms_uri_encode(buf_t *out, const char *s, size_t n);

/* Lower-case hex of SHA-256(p). out must hold 65 bytes; it is NUL-terminated. */
void csms_sha256_hex(const void *p, size_t n, char out[65]);

/* Formats t as X-Sdk-Date: YYYYMMDDTHHMMSSZ (UTC), NUL-terminated in out[17]. */
void csms_format_date(time_t t, char out[17]);

typedef struct csms_signer csms_signer_t;

/* The SK's HMAC key schedule is computed once here; the SK bytes are not kept elsewhere.
 * NULL only when memory runs out. */
csms_signer_t *csms_signer_new(const char *ak, size_t ak_len, const char *sk, size_t sk_len);
void csms_signer_free(csms_signer_t *s);

/* X-Sdk-Date for t, formatted once per second and kept in the signer. */
const char *csms_signer_date(csms_signer_t *s, time_t t);

/* Signs a request. headers must include x-sdk-date and should include host (any case); headers whose
 * name has '_' and "authorization" are left out of the signature. On success appends the
 * Authorization header value to auth; if canonical is not NULL the canonical request is
 * appended to it too. Returns 0, or -1 with *err set. */
int csms_sign(csms_signer_t *s, slice_t method, const csms_url_t *url, const csms_header_t *headers,
              size_t nheaders, slice_t body, buf_t *auth, buf_t *canonical, const char **err);

#endif

#include "sign.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";
static const char EMPTY_SHA256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* ---------------------------------------------------------------- percent-encoding */

/* 1 for the bytes kept as they are: A-Z a-z 0-9 - _ . ~ */
static const unsigned char UNRESERVED[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

int csms_uri_encode(buf_t *out, const char *s, size_t n) {
  if (n == 0) return 0; /* out->p may still be NULL: no pointer arithmetic on it */
  if (buf_reserve(out, n * 3)) return -1;
  char *w = out->p + out->n;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (UNRESERVED[c]) {
      *w++ = (char)c;
    } else {
      *w++ = '%';
      *w++ = HEX_UPPER[c >> 4];
      *w++ = HEX_UPPER[c & 15];
    }
  }
  out->n = (size_t)(w - out->p);
  return 0;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes %XX; an invalid escape is kept as written ('+' is not a space). Writes at most n
 * bytes to dst, returns the count. */
static size_t uri_decode(char *dst, const char *s, size_t n) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      dst[w++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      dst[w++] = s[i];
    }
  }
  return w;
}

/* ---------------------------------------------------------------- URL */

int csms_url_parse(const char *s, size_t n, csms_url_t *u, const char **err) {
  memset(u, 0, sizeof *u);
  const char *sep = NULL;
  int scheme_done = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) {
      *err = "url contains a space or a control character (CR, LF, NUL...)";
      return -1;
    }
    if (!scheme_done) {
      if (c == ':' && i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
        sep = s + i;
        scheme_done = 1;
      } else if (c == '/' || c == '?' || c == '#') {
        scheme_done = 1;
      }
    }
  }
  if (!sep) {
    *err = "url must be absolute: http(s)://host[:port]/path";
    return -1;
  }
  u->scheme.p = s;
  u->scheme.n = (size_t)(sep - s);
  if (!((u->scheme.n == 4 && strncasecmp(s, "http", 4) == 0) ||
        (u->scheme.n == 5 && strncasecmp(s, "https", 5) == 0))) {
    *err = "url scheme must be http or https";
    return -1;
  }
  const char *p = sep + 3, *end = s + n;
  const char *a = p;
  while (p < end && *p != '/' && *p != '?' && *p != '#') p++;
  u->authority.p = a;
  u->authority.n = (size_t)(p - a);
  if (u->authority.n == 0) {
    *err = "url has no host";
    return -1;
  }
  if (memchr(a, '@', u->authority.n)) {
    *err = "url must not contain user information (user@host)";
    return -1;
  }
  const char *q = p;
  while (q < end && *q != '?' && *q != '#') q++;
  u->path.p = p;
  u->path.n = (size_t)(q - p);
  if (q < end && *q == '?') {
    const char *f = ++q;
    while (f < end && *f != '#') f++;
    u->query.p = q;
    u->query.n = (size_t)(f - q);
  } else {
    u->query.p = q;
  }
  return 0;
}

/* ---------------------------------------------------------------- canonical URI and query */

/* tmp: scratch the caller keeps between calls (no allocation in the steady state). */
static int canonical_uri(buf_t *out, buf_t *scratch, const char *path, size_t n) {
  /* The common case: nothing to decode or encode (every byte unreserved or '/'). */
  size_t plain = 0;
  while (plain < n && (UNRESERVED[(unsigned char)path[plain]] || path[plain] == '/')) plain++;
  if (plain == n) {
    if (buf_add(out, path, n)) return -1;
    return (n == 0 || path[n - 1] != '/') ? buf_addc(out, '/') : 0;
  }
  scratch->n = 0;
  if (buf_reserve(scratch, n + 1)) return -1;
  char *tmp = scratch->p;
  size_t m = uri_decode(tmp, path, n);
  size_t start = out->n;
  int rc = 0;
  /* Split on '/', encode each segment, join with '/'. */
  size_t seg = 0;
  for (size_t i = 0; i <= m && rc == 0; i++) {
    if (i == m || tmp[i] == '/') {
      rc = csms_uri_encode(out, tmp + seg, i - seg);
      if (rc == 0 && i < m) rc = buf_addc(out, '/');
      seg = i + 1;
    }
  }
  if (rc == 0 && (out->n == start || out->p[out->n - 1] != '/')) rc = buf_addc(out, '/');
  return rc;
}

int csms_canonical_uri(buf_t *out, const char *path, size_t n) {
  buf_t scratch = BUF_INIT;
  int rc = canonical_uri(out, &scratch, path, n);
  buf_free(&scratch);
  return rc;
}

typedef struct {
  slice_t k, v;
} kv_t;

static int cmp_bytes(slice_t a, slice_t b) {
  size_t m = a.n < b.n ? a.n : b.n;
  int c = m ? memcmp(a.p, b.p, m) : 0;
  if (c) return c;
  return (a.n > b.n) - (a.n < b.n);
}

static int cmp_kv(const void *x, const void *y) {
  const kv_t *a = x, *b = y;
  int c = cmp_bytes(a->k, b->k);
  return c ? c : cmp_bytes(a->v, b->v);
}

/* kvs and decoded: scratch the caller keeps between calls. */
static int canonical_query(buf_t *out, buf_t *kvs, buf_t *decoded, const char *q, size_t n) {
  if (n == 0) return 0;
  size_t count = 1;
  for (size_t i = 0; i < n; i++) count += q[i] == '&';
  kvs->n = decoded->n = 0;
  if (buf_reserve(kvs, count * sizeof(kv_t)) || buf_reserve(decoded, n)) return -1;
  kv_t *kv = (kv_t *)(void *)kvs->p;
  char *dec = decoded->p; /* decoding never grows, so pointers into dec stay valid */
  size_t nkv = 0, w = 0, start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && q[i] != '&') continue;
    const char *pair = q + start;
    size_t plen = i - start;
    start = i + 1;
    const char *eq = memchr(pair, '=', plen);
    size_t klen = eq ? (size_t)(eq - pair) : plen;
    if (klen == 0) continue; /* empty key: not part of the signature */
    kv[nkv].k.p = dec + w;
    kv[nkv].k.n = uri_decode(dec + w, pair, klen);
    w += kv[nkv].k.n;
    kv[nkv].v.p = dec + w;
    kv[nkv].v.n = eq ? uri_decode(dec + w, eq + 1, plen - klen - 1) : 0;
    w += kv[nkv].v.n;
    nkv++;
  }
  qsort(kv, nkv, sizeof *kv, cmp_kv);
  int rc = 0;
  for (size_t i = 0; i < nkv && rc == 0; i++) {
    if (i) rc = buf_addc(out, '&');
    if (!rc) rc = csms_uri_encode(out, kv[i].k.p, kv[i].k.n);
    if (!rc) rc = buf_addc(out, '=');
    if (!rc) rc = csms_uri_encode(out, kv[i].v.p, kv[i].v.n);
  }
  return rc;
}

int csms_canonical_query(buf_t *out, const char *q, size_t n) {
  buf_t kvs = BUF_INIT, decoded = BUF_INIT;
  int rc = canonical_query(out, &kvs, &decoded, q, n);
  buf_free(&kvs);
  buf_free(&decoded);
  return rc;
}

/* ---------------------------------------------------------------- hashing */

/* Fetched once: in OpenSSL 3 an implicit fetch on every digest costs more than the hash. */
static EVP_MD *sha256_md(void) {
  static EVP_MD *md;
  if (!md) md = EVP_MD_fetch(NULL, "SHA256", NULL);
  return md;
}

static void to_hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = HEX_LOWER[d[i] >> 4];
    out[2 * i + 1] = HEX_LOWER[d[i] & 15];
  }
  out[2 * n] = 0;
}

int csms_sha256_hex(const void *p, size_t n, char out[65]) {
  unsigned char d[32];
  unsigned int dn = 0;
  EVP_MD *md = sha256_md();
  if (!md || !EVP_Digest(p, n, d, &dn, md, NULL) || dn != 32) return -1;
  to_hex(d, 32, out);
  return 0;
}

void csms_format_date(time_t t, char out[17]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---------------------------------------------------------------- signer */

struct csms_signer {
  EVP_MAC_CTX *mac; /* HMAC-SHA256 keyed with the SK; re-initialised without a key per use */
  EVP_MD_CTX *md;   /* reused for every SHA-256 */
  /* Scratch kept between signatures, so that signing allocates nothing in the steady state.
   * creq holds the canonical request (with the security token): wiped when the signer is. */
  buf_t creq, names, headers, kvs, decoded;
  time_t date_t; /* the second date_s was formatted for */
  char date_s[17];
  size_t ak_len;
  char ak[];
};

csms_signer_t *csms_signer_new(const char *ak, size_t ak_len, const char *sk, size_t sk_len) {
  csms_signer_t *s = calloc(1, sizeof *s + ak_len + 1);
  if (!s) return NULL;
  memcpy(s->ak, ak, ak_len);
  s->ak_len = ak_len;
  static EVP_MAC *mac; /* fetched once, like sha256_md(): a fetch is a provider lookup */
  if (!mac) mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (mac) s->mac = EVP_MAC_CTX_new(mac);
  s->md = EVP_MD_CTX_new();
  s->date_t = (time_t)-1;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (!s->mac || !s->md || !sha256_md() ||
      !EVP_MAC_init(s->mac, (const unsigned char *)sk, sk_len, params)) {
    csms_signer_free(s);
    return NULL;
  }
  return s;
}

void csms_signer_free(csms_signer_t *s) {
  if (!s) return;
  EVP_MAC_CTX_free(s->mac); /* OpenSSL cleanses the key material it holds */
  EVP_MD_CTX_free(s->md);
  buf_wipe_free(&s->creq);
  buf_wipe_free(&s->names);
  buf_free(&s->headers);
  buf_wipe_free(&s->kvs);
  buf_wipe_free(&s->decoded);
  OPENSSL_cleanse(s->ak, s->ak_len);
  free(s);
}

const char *csms_signer_date(csms_signer_t *s, time_t t) {
  if (t != s->date_t) {
    csms_format_date(t, s->date_s);
    s->date_t = t;
  }
  return s->date_s;
}

static int sha_hex(csms_signer_t *s, const void *p, size_t n, char out[65]) {
  unsigned char d[32];
  unsigned int dn = 0;
  if (!EVP_DigestInit_ex2(s->md, sha256_md(), NULL) || !EVP_DigestUpdate(s->md, p, n) ||
      !EVP_DigestFinal_ex(s->md, d, &dn) || dn != 32)
    return -1;
  to_hex(d, 32, out);
  return 0;
}

static int hmac_hex(csms_signer_t *s, const char *msg, size_t n, char out[65]) {
  unsigned char d[32];
  size_t dn = 0;
  if (!EVP_MAC_init(s->mac, NULL, 0, NULL) ||
      !EVP_MAC_update(s->mac, (const unsigned char *)msg, n) ||
      !EVP_MAC_final(s->mac, d, &dn, sizeof d) || dn != 32)
    return -1;
  to_hex(d, 32, out); /* the signature: sent in the clear, nothing to wipe */
  return 0;
}

/* ---------------------------------------------------------------- headers */

typedef struct {
  slice_t lname; /* lower-cased copy */
  slice_t value; /* trimmed */
} signed_header_t;

/* Insertion sort: a request has a handful of headers. */
static void sort_signed(signed_header_t *sh, size_t n) {
  for (size_t i = 1; i < n; i++) {
    signed_header_t x = sh[i];
    size_t j = i;
    while (j > 0 && cmp_bytes(sh[j - 1].lname, x.lname) > 0) {
      sh[j] = sh[j - 1];
      j--;
    }
    sh[j] = x;
  }
}

static slice_t trim(slice_t v) {
  while (v.n && (v.p[0] == ' ' || v.p[0] == '\t')) v.p++, v.n--;
  while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t')) v.n--;
  return v;
}

static int is_token_char(unsigned char c) {
  static const unsigned char OTHER[256] = {['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1,
                                           ['\''] = 1, ['*'] = 1, ['+'] = 1, ['^'] = 1, ['`'] = 1,
                                           ['|'] = 1};
  return UNRESERVED[c] || OTHER[c];
}

static int slice_is(slice_t s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.p, lit, n) == 0;
}

int csms_sign(csms_signer_t *s, slice_t method, const csms_url_t *url, const csms_header_t *headers,
              size_t nheaders, slice_t body, buf_t *auth, buf_t *canonical, const char **err) {
  int rc = -1;
  buf_t *creq = &s->creq, *names = &s->names;
  creq->n = names->n = s->headers.n = 0;
  const char *date = NULL, *content_sha = NULL;
  size_t date_n = 0, content_sha_n = 0, nsigned = 0;
  *err = "out of memory";
  if (buf_reserve(&s->headers, (nheaders ? nheaders : 1) * sizeof(signed_header_t))) goto done;
  signed_header_t *sh = (signed_header_t *)(void *)s->headers.p;

  if (method.n == 0) {
    *err = "method is empty";
    goto done;
  }
  for (size_t i = 0; i < method.n; i++)
    if (method.p[i] < 'A' || method.p[i] > 'Z') {
      *err = "method must be upper-case letters (GET, POST...)";
      goto done;
    }

  /* Lower-cased names go into one buffer, reserved up front so slices into it stay valid. */
  size_t total = 0;
  for (size_t i = 0; i < nheaders; i++) total += headers[i].name.n;
  if (buf_reserve(names, total + 1)) goto done;
  for (size_t i = 0; i < nheaders; i++) {
    slice_t name = headers[i].name, value = headers[i].value;
    if (name.n == 0) {
      *err = "a header name is empty";
      goto done;
    }
    for (size_t j = 0; j < name.n; j++)
      if (!is_token_char((unsigned char)name.p[j])) {
        *err = "a header name has a character outside the HTTP token set";
        goto done;
      }
    for (size_t j = 0; j < value.n; j++) {
      unsigned char c = (unsigned char)value.p[j];
      if (c == '\r' || c == '\n' || c == 0) {
        *err = "a header value contains CR, LF or NUL";
        goto done;
      }
    }
    slice_t lname = {names->p + names->n, name.n};
    for (size_t j = 0; j < name.n; j++) {
      char c = name.p[j];
      names->p[names->n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    if (slice_is(lname, "x-sdk-date")) date = trim(value).p, date_n = trim(value).n;
    if (slice_is(lname, "x-sdk-content-sha256"))
      content_sha = trim(value).p, content_sha_n = trim(value).n;
    /* The gateway leaves names with '_' out; Authorization is the signature itself. */
    if (memchr(lname.p, '_', lname.n) || slice_is(lname, "authorization")) continue;
    sh[nsigned].lname = lname;
    sh[nsigned].value = trim(value);
    nsigned++;
  }
  if (!date) {
    *err = "x-sdk-date header missing";
    goto done;
  }
  sort_signed(sh, nsigned);
  for (size_t i = 1; i < nsigned; i++)
    if (cmp_bytes(sh[i].lname, sh[i - 1].lname) == 0) {
      *err = "a header is given twice (names differ only in case)";
      goto done;
    }

  /* CanonicalRequest = METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n HexSHA256(body) */
  *err = "out of memory";
  if (buf_add(creq, method.p, method.n) || buf_addc(creq, '\n') ||
      canonical_uri(creq, &s->decoded, url->path.p, url->path.n) || buf_addc(creq, '\n') ||
      canonical_query(creq, &s->kvs, &s->decoded, url->query.p, url->query.n) ||
      buf_addc(creq, '\n'))
    goto done;
  for (size_t i = 0; i < nsigned; i++)
    if (buf_add(creq, sh[i].lname.p, sh[i].lname.n) || buf_addc(creq, ':') ||
        buf_add(creq, sh[i].value.p, sh[i].value.n) || buf_addc(creq, '\n'))
      goto done;
  if (buf_addc(creq, '\n')) goto done;
  size_t signed_at = creq->n;
  for (size_t i = 0; i < nsigned; i++)
    if ((i && buf_addc(creq, ';')) || buf_add(creq, sh[i].lname.p, sh[i].lname.n)) goto done;
  size_t signed_len = creq->n - signed_at;
  if (buf_addc(creq, '\n')) goto done;
  if (content_sha) {
    if (buf_add(creq, content_sha, content_sha_n)) goto done;
  } else if (body.n == 0) {
    if (buf_add(creq, EMPTY_SHA256, 64)) goto done;
  } else {
    char bh[65];
    if (sha_hex(s, body.p, body.n, bh) || buf_add(creq, bh, 64)) goto done;
  }

  /* StringToSign = "SDK-HMAC-SHA256" \n X-Sdk-Date \n HexSHA256(CanonicalRequest) */
  char sts[16 + 1 + 64 + 1 + 64], crh[65], sig[65];
  if (date_n > 64) {
    *err = "x-sdk-date header is too long";
    goto done;
  }
  if (sha_hex(s, creq->p, creq->n, crh)) goto done;
  size_t stsn = 16;
  memcpy(sts, "SDK-HMAC-SHA256\n", 16);
  memcpy(sts + stsn, date, date_n);
  stsn += date_n;
  sts[stsn++] = '\n';
  memcpy(sts + stsn, crh, 64);
  stsn += 64;
  if (hmac_hex(s, sts, stsn, sig)) {
    *err = "HMAC-SHA256 failed";
    goto done;
  }

  *err = "out of memory";
  if (buf_adds(auth, "SDK-HMAC-SHA256 Access=") || buf_add(auth, s->ak, s->ak_len) ||
      buf_adds(auth, ", SignedHeaders=") || buf_add(auth, creq->p + signed_at, signed_len) ||
      buf_adds(auth, ", Signature=") || buf_add(auth, sig, 64))
    goto done;
  if (canonical && buf_add(canonical, creq->p, creq->n)) goto done;
  rc = 0;
  *err = NULL;
done:
  return rc;
}

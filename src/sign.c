/* SHA256_Init/Update/Final: deprecated in OpenSSL 3.0 but still built and exported, and the
 * fastest path it has: no provider dispatch, and a context is a plain struct, so the HMAC key
 * schedule (the two padded-key midstates) is kept per signer and copied per signature. The
 * EVP route costs about a third more per signature (bench/README.md). */
#define OPENSSL_API_COMPAT 0x10101000L

#include "sign.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char EMPTY_SHA256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* ---------------------------------------------------------------- percent-encoding */

/* 1 for the bytes kept as they are: A-Z a-z 0-9 - _ . ~; 2 for '/', kept in a path only. */
static const unsigned char UNRESERVED[256] = {
    ['/'] = 2, ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
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
    if (UNRESERVED[c] == 1) {
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

/* 1 for the bytes a URL must not contain: space, control characters, DEL. */
static const unsigned char URL_BAD[256] = {[0 ... ' '] = 1, [0x7f] = 1};

/* Whether s has a byte URL_BAD marks: eight bytes at a time (some byte below 0x21, or some
 * byte equal to 0x7f; both tests are exact as a yes/no), then byte by byte. */
static int has_url_bad(const char *s, size_t n) {
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy(&x, s + i, 8);
    y = x ^ (0x7f * ones);
    if (((x - 0x21 * ones) & ~x & highs) | ((y - ones) & ~y & highs)) return 1;
  }
  for (; i < n; i++)
    if (URL_BAD[(unsigned char)s[i]]) return 1;
  return 0;
}

int csms_url_parse(const char *s, size_t n, csms_url_t *u, const char **err) {
  memset(u, 0, sizeof *u);
  if (has_url_bad(s, n)) {
    *err = "url contains a space or a control character (CR, LF, NUL...)";
    return -1;
  }
  /* The scheme ends at the first "://" before any '/', '?' or '#'. */
  const char *sep = NULL;
  for (size_t i = 0; i < n && s[i] != '/' && s[i] != '?' && s[i] != '#'; i++)
    if (s[i] == ':' && i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
      sep = s + i;
      break;
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
  const char *p = sep + 3, *end = memchr(p, '#', (size_t)(s + n - p)); /* '#' ends it all */
  if (!end) end = s + n;
  /* The authority ends at the first '/' or '?', the path at the first '?'. */
  const char *a = p, *q = memchr(p, '?', (size_t)(end - p)), *stop = q ? q : end;
  const char *slash = memchr(p, '/', (size_t)(stop - p));
  p = slash ? slash : stop;
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
  u->path.p = p;
  u->path.n = (size_t)(stop - p);
  u->query.p = q ? q + 1 : end;
  u->query.n = q ? (size_t)(end - q - 1) : 0;
  return 0;
}

/* ---------------------------------------------------------------- canonical URI and query */

/* tmp: scratch the caller keeps between calls (no allocation in the steady state). */
static int canonical_uri(buf_t *out, buf_t *scratch, const char *path, size_t n) {
  /* The common case: nothing to decode or encode (every byte unreserved or '/'). */
  const unsigned char *u = (const unsigned char *)path;
  size_t plain = 0;
  while (plain + 4 <= n && (UNRESERVED[u[plain]] && UNRESERVED[u[plain + 1]] &&
                            UNRESERVED[u[plain + 2]] && UNRESERVED[u[plain + 3]]))
    plain += 4;
  while (plain < n && UNRESERVED[u[plain]]) plain++;
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

/* "00" to "ff": to_hex stores two digits per byte. */
static const char HEX_PAIRS[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void to_hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) memcpy(out + 2 * i, HEX_PAIRS + 2 * d[i], 2);
  out[2 * n] = 0;
}

/* SHA256_Final cleanses the context's data block itself. */
void csms_sha256_hex(const void *p, size_t n, char out[65]) {
  unsigned char d[32];
  SHA256_CTX c;
  SHA256_Init(&c);
  SHA256_Update(&c, p, n);
  SHA256_Final(d, &c);
  to_hex(d, 32, out);
}

void csms_format_date(time_t t, char out[17]) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---------------------------------------------------------------- signer */

struct csms_signer {
  /* HMAC-SHA256 key schedule (RFC 2104): SHA-256 midstates after (K ^ ipad) and (K ^ opad).
   * They stand for the SK, which is not kept: wiped when the signer is freed. */
  SHA256_CTX ipad, opad;
  /* Scratch kept between signatures, so that signing allocates nothing in the steady state.
   * creq holds the canonical request (with the security token): wiped when the signer is. */
  buf_t creq, names, headers, kvs, decoded;
  /* The canonical headers of the last header list signed, for the next one (csms_sign). They
   * hold the security token: wiped when the signer is. */
  buf_t key, head, tail;
  size_t date_at;            /* index of X-Sdk-Date in that list */
  size_t signed_at, signed_n; /* SignedHeaders within tail */
  int content_sha;           /* tail ends with the caller's X-Sdk-Content-Sha256 */
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
  s->date_t = (time_t)-1;
  s->date_at = (size_t)-1;
  unsigned char key[64] = {0}, pad[64];
  if (sk_len > sizeof key) { /* a longer key is replaced by its hash */
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, sk, sk_len);
    SHA256_Final(key, &c);
    OPENSSL_cleanse(&c, sizeof c); /* its state is the key now */
  } else {
    memcpy(key, sk, sk_len);
  }
  for (size_t i = 0; i < 64; i++) pad[i] = key[i] ^ 0x36;
  SHA256_Init(&s->ipad);
  SHA256_Update(&s->ipad, pad, 64);
  for (size_t i = 0; i < 64; i++) pad[i] = key[i] ^ 0x5c;
  SHA256_Init(&s->opad);
  SHA256_Update(&s->opad, pad, 64);
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(pad, sizeof pad);
  return s;
}

void csms_signer_free(csms_signer_t *s) {
  if (!s) return;
  OPENSSL_cleanse(&s->ipad, sizeof s->ipad);
  OPENSSL_cleanse(&s->opad, sizeof s->opad);
  buf_wipe_free(&s->creq);
  buf_wipe_free(&s->names);
  buf_free(&s->headers);
  buf_wipe_free(&s->kvs);
  buf_wipe_free(&s->decoded);
  buf_wipe_free(&s->key);
  buf_wipe_free(&s->head);
  buf_wipe_free(&s->tail);
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

/* HMAC-SHA256 of msg from the kept midstates: two copies of a plain struct, no key schedule. */
static void hmac_hex(const csms_signer_t *s, const char *msg, size_t n, char out[65]) {
  unsigned char d[32];
  SHA256_CTX c = s->ipad;
  SHA256_Update(&c, msg, n);
  SHA256_Final(d, &c);
  c = s->opad;
  SHA256_Update(&c, d, 32);
  SHA256_Final(d, &c);
  /* c and d now hold the signature, sent in the clear: nothing to wipe (the midstates copied
   * into c are overwritten by the hashing itself). */
  to_hex(d, 32, out);
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

/* A header name byte lower-cased, or 0 for a byte outside the HTTP token set. */
static const unsigned char NAME_LOWER[256] = {
    ['!'] = '!', ['#'] = '#', ['$'] = '$', ['%'] = '%', ['&'] = '&', ['\''] = '\'', ['*'] = '*',
    ['+'] = '+', ['-'] = '-', ['.'] = '.', ['^'] = '^', ['_'] = '_', ['`'] = '`', ['|'] = '|',
    ['~'] = '~', ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5',
    ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
    ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f', ['G'] = 'g',
    ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n',
    ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't', ['U'] = 'u',
    ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z',
    ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd', ['e'] = 'e', ['f'] = 'f', ['g'] = 'g',
    ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n',
    ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's', ['t'] = 't', ['u'] = 'u',
    ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y', ['z'] = 'z',
};

/* 1 for the bytes a header value must not contain. */
static const unsigned char VALUE_BAD[256] = {[0] = 1, ['\r'] = 1, ['\n'] = 1};

#define SLICE_IS(s, lit) ((s).n == sizeof(lit) - 1 && memcmp((s).p, lit, sizeof(lit) - 1) == 0)

/* The key of the header cache: every name and value in the order given, the X-Sdk-Date value
 * left out (it changes every second). Lengths first, so that no two lists share a key. */
static int header_key(buf_t *key, const csms_header_t *headers, size_t nheaders, size_t date_at) {
  key->n = 0;
  for (size_t i = 0; i < nheaders; i++) {
    size_t len[2] = {headers[i].name.n, i == date_at ? (size_t)-1 : headers[i].value.n};
    if (buf_add(key, len, sizeof len) || buf_add(key, headers[i].name.p, len[0]) ||
        (i != date_at && buf_add(key, headers[i].value.p, len[1])))
      return -1;
  }
  return 0;
}

/* Whether header_key would give exactly key, compared in place. */
static int same_key(const buf_t *key, const csms_header_t *headers, size_t nheaders,
                    size_t date_at) {
  const char *p = key->p, *end = key->p + key->n;
  for (size_t i = 0; i < nheaders; i++) {
    size_t len[2] = {headers[i].name.n, i == date_at ? (size_t)-1 : headers[i].value.n};
    if ((size_t)(end - p) < sizeof len + len[0] || memcmp(p, len, sizeof len) ||
        memcmp(p + sizeof len, headers[i].name.p, len[0]))
      return 0;
    p += sizeof len + len[0];
    if (i == date_at) continue;
    if ((size_t)(end - p) < len[1] || (len[1] && memcmp(p, headers[i].value.p, len[1]))) return 0;
    p += len[1];
  }
  return p == end;
}

/* Canonical headers of a header list, validated, into the signer's cache:
 *   head  = the lines up to "x-sdk-date:" (the date value goes after it)
 *   tail  = "\n", the lines after the date's, "\n", SignedHeaders, "\n" and, when the caller
 *           gave X-Sdk-Content-Sha256, its value (the body-hash line)
 * Returns 0, or -1 with *err set (the cache is then left empty). */
static int canonical_headers(csms_signer_t *s, const csms_header_t *headers, size_t nheaders,
                             const char **err) {
  buf_t *names = &s->names, *head = &s->head, *tail = &s->tail;
  names->n = s->headers.n = head->n = tail->n = 0;
  s->key.n = 0;
  s->date_at = (size_t)-1;
  s->content_sha = 0;
  *err = "out of memory";
  if (buf_reserve(&s->headers, (nheaders ? nheaders : 1) * sizeof(signed_header_t))) return -1;
  signed_header_t *sh = (signed_header_t *)(void *)s->headers.p;
  slice_t content_sha = {NULL, 0};
  size_t nsigned = 0;

  /* Lower-cased names go into one buffer, reserved up front so slices into it stay valid. */
  size_t total = 0;
  for (size_t i = 0; i < nheaders; i++) total += headers[i].name.n;
  if (buf_reserve(names, total + 1)) return -1;
  for (size_t i = 0; i < nheaders; i++) {
    slice_t name = headers[i].name, value = headers[i].value;
    if (name.n == 0) {
      *err = "a header name is empty";
      return -1;
    }
    slice_t lname = {names->p + names->n, name.n};
    int underscore = 0;
    for (size_t j = 0; j < name.n; j++) {
      unsigned char c = NAME_LOWER[(unsigned char)name.p[j]];
      if (!c) {
        *err = "a header name has a character outside the HTTP token set";
        return -1;
      }
      underscore |= c == '_';
      names->p[names->n++] = (char)c;
    }
    for (size_t j = 0; j < value.n; j++)
      if (VALUE_BAD[(unsigned char)value.p[j]]) {
        *err = "a header value contains CR, LF or NUL";
        return -1;
      }
    if (SLICE_IS(lname, "x-sdk-date")) s->date_at = i;
    if (SLICE_IS(lname, "x-sdk-content-sha256")) content_sha = trim(value), s->content_sha = 1;
    /* The gateway leaves names with '_' out; Authorization is the signature itself. */
    if (underscore || SLICE_IS(lname, "authorization")) continue;
    sh[nsigned].lname = lname;
    sh[nsigned].value = trim(value);
    nsigned++;
  }
  if (s->date_at == (size_t)-1) {
    *err = "x-sdk-date header missing";
    return -1;
  }
  sort_signed(sh, nsigned);
  for (size_t i = 1; i < nsigned; i++)
    if (cmp_bytes(sh[i].lname, sh[i - 1].lname) == 0) {
      *err = "a header is given twice (names differ only in case)";
      return -1;
    }

  *err = "out of memory";
  buf_t *out = head;
  for (size_t i = 0; i < nsigned; i++) {
    if (buf_add(out, sh[i].lname.p, sh[i].lname.n) || buf_addc(out, ':')) goto fail;
    if (SLICE_IS(sh[i].lname, "x-sdk-date")) { /* the date value goes between head and tail */
      out = tail;
    } else if (buf_add(out, sh[i].value.p, sh[i].value.n)) {
      goto fail;
    }
    if (buf_addc(out, '\n')) goto fail;
  }
  if (buf_addc(tail, '\n')) goto fail;
  s->signed_at = tail->n;
  for (size_t i = 0; i < nsigned; i++)
    if ((i && buf_addc(tail, ';')) || buf_add(tail, sh[i].lname.p, sh[i].lname.n)) goto fail;
  s->signed_n = tail->n - s->signed_at;
  if (buf_addc(tail, '\n') || buf_add(tail, content_sha.p, content_sha.n) ||
      header_key(&s->key, headers, nheaders, s->date_at))
    goto fail;
  return 0;
fail:
  s->key.n = 0;
  return -1;
}

int csms_sign(csms_signer_t *s, slice_t method, const csms_url_t *url, const csms_header_t *headers,
              size_t nheaders, slice_t body, buf_t *auth, buf_t *canonical, const char **err) {
  buf_t *creq = &s->creq;
  creq->n = 0;
  if (method.n == 0) {
    *err = "method is empty";
    return -1;
  }
  for (size_t i = 0; i < method.n; i++)
    if (method.p[i] < 'A' || method.p[i] > 'Z') {
      *err = "method must be upper-case letters (GET, POST...)";
      return -1;
    }

  /* A client signs the same headers every time but for the date: reuse their canonical form
   * when the list is the same, byte for byte, as the one the cache was built from. */
  *err = "out of memory";
  int hit = s->key.n && same_key(&s->key, headers, nheaders, s->date_at);
  if (!hit && canonical_headers(s, headers, nheaders, err)) return -1;
  slice_t date = trim(headers[s->date_at].value);
  for (size_t j = 0; j < date.n; j++)
    if (VALUE_BAD[(unsigned char)date.p[j]]) {
      *err = "a header value contains CR, LF or NUL";
      return -1;
    }
  if (date.n > 64) {
    *err = "x-sdk-date header is too long";
    return -1;
  }

  /* CanonicalRequest = METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n HexSHA256(body) */
  *err = "out of memory";
  if (buf_add(creq, method.p, method.n) || buf_addc(creq, '\n') ||
      canonical_uri(creq, &s->decoded, url->path.p, url->path.n) || buf_addc(creq, '\n') ||
      canonical_query(creq, &s->kvs, &s->decoded, url->query.p, url->query.n) ||
      buf_addc(creq, '\n') || buf_add(creq, s->head.p, s->head.n) ||
      buf_add(creq, date.p, date.n))
    return -1;
  size_t signed_at = creq->n + s->signed_at;
  if (buf_add(creq, s->tail.p, s->tail.n)) return -1;
  if (!s->content_sha) {
    char bh[65];
    if (body.n == 0) {
      memcpy(bh, EMPTY_SHA256, 64);
    } else {
      csms_sha256_hex(body.p, body.n, bh);
    }
    if (buf_add(creq, bh, 64)) return -1;
  }

  /* StringToSign = "SDK-HMAC-SHA256" \n X-Sdk-Date \n HexSHA256(CanonicalRequest) */
  char sts[16 + 1 + 64 + 1 + 64], sig[65];
  size_t stsn = 16;
  memcpy(sts, "SDK-HMAC-SHA256\n", 16);
  memcpy(sts + stsn, date.p, date.n);
  stsn += date.n;
  sts[stsn++] = '\n';
  csms_sha256_hex(creq->p, creq->n, sts + stsn);
  stsn += 64;
  hmac_hex(s, sts, stsn, sig);

#define ADD_LIT(b, lit) buf_add(b, lit, sizeof(lit) - 1)
  if (ADD_LIT(auth, "SDK-HMAC-SHA256 Access=") || buf_add(auth, s->ak, s->ak_len) ||
      ADD_LIT(auth, ", SignedHeaders=") || buf_add(auth, creq->p + signed_at, s->signed_n) ||
      ADD_LIT(auth, ", Signature=") || buf_add(auth, sig, 64))
    return -1;
  if (canonical && buf_add(canonical, creq->p, creq->n)) return -1;
  *err = NULL;
  return 0;
}

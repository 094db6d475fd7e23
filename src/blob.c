#include "blob.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static int is_b64url(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_';
}

static int is_domain_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* base64url without padding -> bytes, through OpenSSL's standard-alphabet decoder. */
static int b64url_decode(const char *s, size_t n, buf_t *out) {
  if (n % 4 == 1) return -1;
  size_t padded = (n + 3) / 4 * 4;
  unsigned char *tmp = malloc(padded + 1);
  if (!tmp) return -1;
  for (size_t i = 0; i < n; i++) tmp[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
  for (size_t i = n; i < padded; i++) tmp[i] = '=';
  int rc = -1;
  if (buf_reserve(out, padded / 4 * 3 + 1) == 0) {
    int m = EVP_DecodeBlock((unsigned char *)out->p + out->n, tmp, (int)padded);
    if (m >= 0) {
      out->n += (size_t)m - (padded - n); /* EVP_DecodeBlock counts the padding as zero bytes */
      rc = 0;
    }
  }
  free(tmp);
  return rc;
}

int csms_blob_check(const char *s, size_t n, buf_t *header, const char **err) {
  const size_t plen = sizeof CSMS_BLOB_PREFIX - 1;
  if (n == 0) return *err = "secret_blob is empty", -1;
  if (n > CSMS_BLOB_MAX) return *err = "secret_blob is longer than 5,242,880 characters", -1;
  if (n < plen || memcmp(s, CSMS_BLOB_PREFIX, plen) != 0)
    return *err = "secret_blob does not start with \")CloudSecretManagementBackupV1.\"", -1;

  /* The domain runs up to the JWE header, whose base64url always starts "eyJ" ('{"'). */
  const char *p = s + plen, *end = s + n, *jwe = NULL;
  for (const char *q = p; q + 3 <= end; q++) {
    if (q[0] == 'e' && q[1] == 'y' && q[2] == 'J') {
      jwe = q;
      break;
    }
    if (!is_domain_char((unsigned char)*q)) break;
  }
  if (!jwe) return *err = "secret_blob has no JWE header after the domain", -1;
  if (jwe == p || *p == '.' || jwe[-1] == '.' || *p == '-')
    return *err = "secret_blob has no valid domain after the prefix", -1;

  /* Compact JWE: base64url parts joined by '.', four (as the docs show) or five. */
  size_t parts = 1;
  const char *first_dot = NULL, *last_dot = NULL;
  for (const char *q = jwe; q < end; q++) {
    unsigned char c = (unsigned char)*q;
    if (c == '.') {
      parts++;
      if (!first_dot) first_dot = q;
      last_dot = q;
    } else if (!is_b64url(c)) {
      return *err = "secret_blob has a character outside base64url in its JWE", -1;
    }
  }
  if (parts != 4 && parts != 5)
    return *err = "secret_blob's JWE must have 4 or 5 parts separated by '.'", -1;
  if (last_dot == end - 1) return *err = "secret_blob's JWE has an empty last part", -1;
  if (b64url_decode(jwe, (size_t)(first_dot - jwe), header))
    return *err = "secret_blob's JWE header is not valid base64url", -1;
  return 0;
}

/* The hardware floor of one SDK-HMAC-SHA256 signature: only the hashing and the HMAC that
 * signing a request of a given shape needs, with OpenSSL, nothing else (no parsing, no header
 * sorting, no allocation, no Lua).
 *
 *   cc -O2 -o floor bench/floor.c -lcrypto
 *   ./floor BODY_BYTES CANONICAL_BYTES ITERATIONS RUNS
 *
 * Per signature, the same steps as src/sign.c, with its caching:
 *   - SHA-256 of the body, hex-encoded (skipped for an empty body: the signer uses the
 *     constant hash of "" too);
 *   - SHA-256 of a canonical request of CANONICAL_BYTES bytes (one whose body-hash line holds
 *     the hex digest above), hex-encoded;
 *   - HMAC-SHA256 of the 97-byte string to sign ("SDK-HMAC-SHA256\n" date "\n" hash), hex-encoded,
 *     with an EVP_MAC_CTX keyed once and re-initialised without the key per signature, and the
 *     SHA-256 EVP_MD fetched once (what csms_signer_new / csms_sha256_hex do).
 * One run is discarded as a warm-up; prints each run's signatures/s and the median. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static const char HEX[] = "0123456789abcdef";

static void to_hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = HEX[d[i] >> 4];
    out[2 * i + 1] = HEX[d[i] & 15];
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s BODY_BYTES CANONICAL_BYTES ITERATIONS RUNS\n", argv[0]);
    return 2;
  }
  size_t body_n = strtoul(argv[1], NULL, 10), creq_n = strtoul(argv[2], NULL, 10);
  long iters = atol(argv[3]);
  int runs = atoi(argv[4]);
  if (creq_n < 64 || iters < 1 || runs < 1 || runs > 100) {
    fprintf(stderr, "floor: bad arguments\n");
    return 2;
  }
  char *body = malloc(body_n + 1), *creq = malloc(creq_n);
  memset(body, 'b', body_n);
  memset(creq, 'c', creq_n);
  const char sk[] = "emulator-sk-0123456789abcdefghijklmnopqrstuv";

  EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (!md || !ctx || !EVP_MAC_init(ctx, (const unsigned char *)sk, sizeof sk - 1, params)) {
    fprintf(stderr, "floor: OpenSSL setup failed\n");
    return 1;
  }

  char sts[97];
  memcpy(sts, "SDK-HMAC-SHA256\n20261123T120000Z\n", 33);
  unsigned char d[32];
  unsigned int dn;
  size_t mn;
  char sig[64];
  unsigned sink = 0;
  double rates[101];
  for (int r = 0; r <= runs; r++) {
    double t0 = now();
    for (long i = 0; i < iters; i++) {
      if (body_n) {
        if (!EVP_Digest(body, body_n, d, &dn, md, NULL)) return 1;
        to_hex(d, 32, creq + creq_n - 64); /* the body-hash line of the canonical request */
      }
      creq[0] = (char)i; /* each canonical request differs (the date does) */
      if (!EVP_Digest(creq, creq_n, d, &dn, md, NULL)) return 1;
      to_hex(d, 32, sts + 33);
      if (!EVP_MAC_init(ctx, NULL, 0, NULL) ||
          !EVP_MAC_update(ctx, (const unsigned char *)sts, sizeof sts) ||
          !EVP_MAC_final(ctx, d, &mn, sizeof d))
        return 1;
      to_hex(d, 32, sig);
      sink += (unsigned char)sig[i & 63];
    }
    double rate = (double)iters / (now() - t0);
    if (r == 0) continue; /* warm-up */
    rates[r - 1] = rate;
    printf("run %d: %.0f signatures/s\n", r, rate);
  }
  qsort(rates, (size_t)runs, sizeof rates[0], cmp_double);
  double median = runs % 2 ? rates[runs / 2] : (rates[runs / 2 - 1] + rates[runs / 2]) / 2;
  printf("median_per_s=%.1f sink=%u\n", median, sink);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  EVP_MD_free(md);
  free(body);
  free(creq);
  return 0;
}

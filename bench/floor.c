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
 *     from the two padded-key midstates computed once (what csms_signer_new keeps).
 * With the same OpenSSL calls as src/sign.c: SHA256_Init/Update/Final, the fastest path OpenSSL
 * 3 has (the EVP calls add a provider dispatch per digest, about a third more per signature). 
 * One run is discarded as a warm-up; prints each run's signatures/s and the median. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPENSSL_API_COMPAT 0x10101000L /* SHA256_Init & co., as src/sign.c */
#include <openssl/sha.h>

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

  SHA256_CTX ipad, opad, c; /* the key schedule: midstates after (K ^ 0x36..) and (K ^ 0x5c..) */
  unsigned char pad[64] = {0};
  memcpy(pad, sk, sizeof sk - 1);
  for (int j = 0; j < 64; j++) pad[j] ^= 0x36;
  SHA256_Init(&ipad);
  SHA256_Update(&ipad, pad, 64);
  for (int j = 0; j < 64; j++) pad[j] ^= 0x36 ^ 0x5c;
  SHA256_Init(&opad);
  SHA256_Update(&opad, pad, 64);

  char sts[97];
  memcpy(sts, "SDK-HMAC-SHA256\n20261123T120000Z\n", 33);
  unsigned char d[32];
  char sig[64];
  unsigned sink = 0;
  double rates[101];
  for (int r = 0; r <= runs; r++) {
    double t0 = now();
    for (long i = 0; i < iters; i++) {
      if (body_n) {
        SHA256_Init(&c);
        SHA256_Update(&c, body, body_n);
        SHA256_Final(d, &c);
        to_hex(d, 32, creq + creq_n - 64); /* the body-hash line of the canonical request */
      }
      creq[0] = (char)i; /* each canonical request differs (the date does) */
      SHA256_Init(&c);
      SHA256_Update(&c, creq, creq_n);
      SHA256_Final(d, &c);
      to_hex(d, 32, sts + 33);
      c = ipad;
      SHA256_Update(&c, sts, sizeof sts);
      SHA256_Final(d, &c);
      c = opad;
      SHA256_Update(&c, d, 32);
      SHA256_Final(d, &c);
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
  free(body);
  free(creq);
  return 0;
}

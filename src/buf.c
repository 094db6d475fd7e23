#include "buf.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

int buf_grow(buf_t *b, size_t extra) {
  if (b->cap - b->n >= extra) return 0;
  if (extra > (size_t)-1 / 2 - b->n) return -1;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->n < extra) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int buf_adds(buf_t *b, const char *s) { return buf_add(b, s, strlen(s)); }

void buf_free(buf_t *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

void buf_wipe_free(buf_t *b) {
  if (b->p) OPENSSL_cleanse(b->p, b->cap);
  buf_free(b);
}

/* A growable byte buffer, and a slice of bytes. Functions return 0 on success, -1 when memory
 * runs out; after a failure the buffer keeps what it had (so callers can free it and report). */
#ifndef CSMS_BUF_H
#define CSMS_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
  char *p;
  size_t n, cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

/* Bytes owned by someone else. */
typedef struct {
  const char *p;
  size_t n;
} slice_t;

int buf_grow(buf_t *b, size_t extra); /* the slow path of buf_reserve */
int buf_adds(buf_t *b, const char *s);

/* The hot paths inline: signing appends many short pieces. */
static inline int buf_reserve(buf_t *b, size_t extra) {
  return b->cap - b->n >= extra ? 0 : buf_grow(b, extra);
}

static inline int buf_add(buf_t *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (buf_reserve(b, n)) return -1;
  memcpy(b->p + b->n, p, n);
  b->n += n;
  return 0;
}

static inline int buf_addc(buf_t *b, char c) {
  if (buf_reserve(b, 1)) return -1;
  b->p[b->n++] = c;
  return 0;
}
void buf_free(buf_t *b);
/* Overwrites the contents with zeros before freeing (for bodies that may hold secrets). */
void buf_wipe_free(buf_t *b);

#endif

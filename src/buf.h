/* A growable byte buffer. Functions return 0 on success, -1 when memory runs out; after a
 * failure the buffer keeps what it had (so callers can free it and report). */
#ifndef CSMS_BUF_H
#define CSMS_BUF_H

#include <stddef.h>

typedef struct {
  char *p;
  size_t n, cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

int buf_reserve(buf_t *b, size_t extra);
int buf_add(buf_t *b, const void *p, size_t n);
int buf_addc(buf_t *b, char c);
int buf_adds(buf_t *b, const char *s);
void buf_free(buf_t *b);
/* Overwrites the contents with zeros before freeing (for bodies that may hold secrets). */
void buf_wipe_free(buf_t *b);

#endif

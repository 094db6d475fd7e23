/* libFuzzer target: csms_blob_check, the shape check every restore runs on a blob read from a
 * backup file (untrusted: files can be edited or corrupted). On success the decoded header is
 * at most 3/4 of the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/blob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size ? size : 1);
  if (!s) return 0;
  memcpy(s, data, size);
  buf_t hdr = BUF_INIT;
  const char *err = NULL;
  if (csms_blob_check(s, size, &hdr, &err) == 0) {
    if (err || hdr.n > size) abort();
  } else if (!err) {
    abort();
  }
  buf_free(&hdr);
  free(s);
  return 0;
}

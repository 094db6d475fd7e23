/* The shape of a CSMS secret blob: ")CloudSecretManagementBackupV1." + domain + compact JWE. */
#ifndef CSMS_BLOB_H
#define CSMS_BLOB_H

#include <stddef.h>

#include "buf.h"

#define CSMS_BLOB_MAX 5242880
#define CSMS_BLOB_PREFIX ")CloudSecretManagementBackupV1."

/* Checks the shape and appends the decoded JWE protected header (JSON text, unparsed) to
 * header. Returns 0, or -1 with *err set to a static message. */
int csms_blob_check(const char *s, size_t n, buf_t *header, const char **err);

#endif

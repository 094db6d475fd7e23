/* libFuzzer target: the response side of http.c, which reads bytes any server sends.
 * http.c's callbacks are static, so it is compiled in whole here (nothing in src/ changes):
 *   on_header   -- each raw header line as libcurl hands it over (with its CRLF),
 *   on_body     -- body chunks against the max_response cap,
 *   push_headers / push_result -- the Lua table the client reads, in a real Lua 5.4 state.
 * Input: byte 0 = flags (bit 0: repeat the header block until the 64 KiB cap trips;
 * bits 1-3: curl result code to report instead of CURLE_OK), byte 1 = body cap in 64-byte
 * units (0 = 16 MiB), byte 2 = body chunk size, then header lines up to an empty line, then
 * the body. */
#include "../src/lua_http.c"

#include <lualib.h>
#include <stdint.h>

static lua_State *L;
static CURL *easy;

static const CURLcode CODES[8] = {CURLE_OK,
                                  CURLE_OPERATION_TIMEDOUT,
                                  CURLE_PEER_FAILED_VERIFICATION,
                                  CURLE_COULDNT_CONNECT,
                                  CURLE_RECV_ERROR,
                                  CURLE_FILESIZE_EXCEEDED,
                                  CURLE_WRITE_ERROR,
                                  CURLE_GOT_NOTHING};

/* The table push_headers made: names lower-case, no ':' and no line breaks anywhere. */
static void check_headers(int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t kn, vn;
    const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
    if (!k || !v || kn == 0) abort();
    for (size_t i = 0; i < kn; i++)
      if ((k[i] >= 'A' && k[i] <= 'Z') || k[i] == ':' || k[i] == '\n') abort();
    if (memchr(v, '\n', vn)) abort();
    lua_pop(L, 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy = curl_easy_init();
    if (!L || !easy) abort();
  }
  if (size < 3) return 0;
  int flags = data[0];
  size_t cap = data[1] ? (size_t)data[1] * 64 : 16 * 1024 * 1024;
  size_t chunk = data[2] ? data[2] : 1;
  const char *p = (const char *)data + 3, *end = (const char *)data + size;

  xfer_t x;
  memset(&x, 0, sizeof x);
  x.easy = easy;
  x.id = 1;
  x.max_body = cap;
  x.body_ref = LUA_NOREF;

  /* Header lines, each with its terminator, as libcurl's header callback gets them. */
  const char *hstart = p;
  int stop = 0;
  while (p < end && !stop) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl + 1 : end;
    size_t n = (size_t)(le - p);
    char *line = malloc(n ? n : 1); /* exact size: ASan catches reads past the line */
    memcpy(line, p, n);
    size_t r = on_header(line, 1, n, &x);
    free(line);
    if (r != n) stop = 1;
    p = le;
    if (n == 1 || (n == 2 && p[-2] == '\r')) break; /* the empty line ends the headers */
  }
  const char *hend = p;
  if ((flags & 1) && !stop && hend > hstart) {
    /* The block again and again: with content and no status line (which starts a new
     * response) it must trip the 64 KiB cap, and within the number of copies that fit. */
    size_t n = (size_t)(hend - hstart), content = n;
    while (content && (hstart[content - 1] == '\r' || hstart[content - 1] == '\n')) content--;
    int status_line = content >= 5 && memcmp(hstart, "HTTP/", 5) == 0;
    if (content && !status_line) {
      size_t copies = MAX_HEADER_BYTES / (content + 1) + 2;
      char *line = malloc(n); /* exact size, reused: on_header does not write to it */
      memcpy(line, hstart, n);
      for (size_t i = 0; i < copies && !stop; i++)
        if (on_header(line, 1, n, &x) != n) stop = 1;
      free(line);
      if (x.overflow != OVERFLOW_HEADERS) abort();
    }
  }
  if (x.headers.n > MAX_HEADER_BYTES) abort();

  /* The body in chunks; on_body must stop at the cap and never keep more. */
  int body_stopped = 0;
  while (p < end && !stop) {
    size_t n = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
    char *c = malloc(n);
    memcpy(c, p, n);
    size_t r = on_body(c, 1, n, &x);
    free(c);
    if (r != n) {
      body_stopped = 1;
      break;
    }
    p += n;
  }
  if (x.body.n > cap) abort();
  if (body_stopped && x.overflow != OVERFLOW_BODY) abort();

  /* No header line at all is possible here (push_headers once computed NULL + 0 then: fixed
   * in 3b00881; fuzz/corpus/http/regress-no-header-lines is the input). */
  CURLcode rc = x.overflow ? CURLE_WRITE_ERROR : CODES[(flags >> 1) & 7];
  lua_settop(L, 0);
  push_result(L, &x, rc);
  if (rc == CURLE_OK) {
    lua_getfield(L, 1, "headers");
    check_headers(2);
    lua_pop(L, 1);
  } else {
    lua_getfield(L, 1, "error");
    lua_getfield(L, 1, "message");
    if (!lua_isstring(L, -1) || !lua_isstring(L, -2)) abort();
    lua_pop(L, 2);
  }
  lua_settop(L, 0);
  /* Free as the real code does (not xfer_free: the easy handle is shared across runs). */
  buf_wipe_free(&x.body);
  buf_free(&x.headers);
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}

/* core.http: the libcurl transport. core.http.new{...} makes a client with one connection
 * pool and any number of requests in flight (libcurl's multi interface, no threads):
 * http:submit(...) -> id, http:wait(timeout) -> completed results, http:close(). What a
 * response's bytes become is response.c's business. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "core.h"
#include "lua_aux.h"
#include "response.h"

#define HTTP_MT "csms.http"

typedef struct xfer {
  struct xfer *next;
  CURL *easy;
  struct curl_slist *req_headers;
  csms_response_t res;
  lua_Integer id;
  int body_ref; /* keeps the request body string alive while curl reads it */
  char errbuf[CURL_ERROR_SIZE];
} xfer_t;

typedef struct {
  CURLM *multi;
  xfer_t *active;
  lua_Integer next_id;
  long timeout_ms, connect_timeout_ms;
  int verify;
  char *cafile, *proxy;
  size_t max_body;
} http_t;

/* ---------------------------------------------------------------- transfers */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
  xfer_t *x = ud;
  return csms_response_body(&x->res, p, size * nmemb) ? 0 : size * nmemb; /* 0 aborts */
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
  xfer_t *x = ud;
  return csms_response_header(&x->res, p, size * nmemb) ? 0 : size * nmemb;
}

static void xfer_free(lua_State *L, xfer_t *x) {
  if (x->easy) curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->req_headers);
  csms_response_free(&x->res);
  luaL_unref(L, LUA_REGISTRYINDEX, x->body_ref);
  free(x);
}

static http_t *check_http(lua_State *L) {
  http_t *h = luaL_checkudata(L, 1, HTTP_MT);
  if (!h->multi) luaL_error(L, "csms.http: used after close");
  return h;
}

static int has_bad_bytes(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == 0) return 1;
  return 0;
}

/* Builds "Name: value" lines from a {name = value} table into *out. Returns NULL, or a static
 * message for a header that cannot be sent; raises for a name or value that is not a string. */
static const char *build_headers(lua_State *L, int idx, struct curl_slist **out) {
  struct curl_slist *list = NULL, *l;
  buf_t line = BUF_INIT;
  const char *bad = NULL, *raise = NULL;
  int has_expect = 0;
  lua_pushnil(L);
  while (!bad && !raise && lua_next(L, idx)) {
    size_t kn, vn;
    const char *k, *v;
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
      raise = "headers: names and values must be strings";
    } else if (k = lua_tolstring(L, -2, &kn), v = lua_tolstring(L, -1, &vn),
               kn == 0 || has_bad_bytes(k, kn) || has_bad_bytes(v, vn) || memchr(k, ':', kn)) {
      bad = "a header name or value contains ':' in the name, CR, LF or NUL";
    } else {
      has_expect |= kn == 6 && strncasecmp(k, "expect", 6) == 0;
      line.n = 0;
      /* curl drops "Name:" lines with an empty value; "Name;" sends the header empty. */
      if (buf_add(&line, k, kn) || buf_adds(&line, vn ? ": " : ";") || buf_add(&line, v, vn) ||
          buf_addc(&line, 0) || !(l = curl_slist_append(list, line.p)))
        raise = "out of memory";
      else
        list = l;
    }
    lua_pop(L, (bad || raise) ? 2 : 1);
  }
  buf_free(&line);
  /* No "Expect: 100-continue" round trip before large restore bodies. */
  if (!bad && !raise && !has_expect) {
    if ((l = curl_slist_append(list, "Expect:")))
      list = l;
    else
      raise = "out of memory";
  }
  if (bad || raise) {
    curl_slist_free_all(list);
    if (raise) luaL_error(L, "%s", raise);
    return bad;
  }
  *out = list;
  return NULL;
}

/* http:submit(method, url, headers, body [, fresh]) -> id | nil, message
 * fresh: use a new connection. For requests that must not be sent twice: on a kept-alive
 * connection that dies before any answer, libcurl re-sends the request by itself, and the
 * caller could no longer tell that the first copy may have been carried out. */
static int http_submit(lua_State *L) {
  http_t *h = check_http(L);
  size_t mn, un, bn = 0;
  const char *method = luaL_checklstring(L, 2, &mn);
  const char *url = luaL_checklstring(L, 3, &un);
  luaL_checktype(L, 4, LUA_TTABLE);
  const char *body = luaL_optlstring(L, 5, NULL, &bn);
  int fresh = lua_toboolean(L, 6);
  if (has_bad_bytes(url, un) || has_bad_bytes(method, mn))
    return csms_fail(L, NULL, "url or method contains CR, LF or NUL");
  struct curl_slist *hdrs = NULL;
  const char *bad = build_headers(L, 4, &hdrs);
  if (bad) return csms_fail(L, NULL, bad);
  xfer_t *x = calloc(1, sizeof *x);
  CURL *e = x ? curl_easy_init() : NULL;
  if (!e) {
    free(x);
    curl_slist_free_all(hdrs);
    return luaL_error(L, "out of memory");
  }
  x->easy = e;
  x->req_headers = hdrs;
  x->id = ++h->next_id;
  x->res.max_body = h->max_body;
  x->body_ref = LUA_NOREF;

  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_PRIVATE, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, h->verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, h->verify ? 2L : 0L);
  if (h->cafile) curl_easy_setopt(e, CURLOPT_CAINFO, h->cafile);
  if (h->proxy) curl_easy_setopt(e, CURLOPT_PROXY, h->proxy);
  if (fresh) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "POST") == 0) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bn);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
      if (body) {
        lua_pushvalue(L, 5);
        x->body_ref = luaL_ref(L, LUA_REGISTRYINDEX);
      }
    }
  }
  if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
    xfer_free(L, x);
    return luaL_error(L, "curl_multi_add_handle failed");
  }
  x->next = h->active;
  h->active = x;
  lua_pushinteger(L, x->id);
  return 1;
}

/* Pushes {name = value} of the response's header fields; repeated names are joined with ", ". */
static void push_headers(lua_State *L, const csms_response_t *res) {
  lua_newtable(L);
  buf_t name = BUF_INIT;
  slice_t v;
  size_t pos = 0;
  int more;
  while ((more = csms_response_field(res, &pos, &name, &v)) > 0) {
    lua_pushlstring(L, name.p, name.n);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v.p, v.n);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v.p, v.n);
    }
    lua_rawset(L, -3);
  }
  buf_free(&name);
  if (more < 0) luaL_error(L, "out of memory");
}

static const char *error_kind(CURLcode rc, int overflow) {
  if (overflow == CSMS_RESPONSE_BODY_TOO_LARGE || rc == CURLE_FILESIZE_EXCEEDED)
    return "response_too_large";
  if (overflow == CSMS_RESPONSE_HEADERS_TOO_LARGE) return "bad_response";
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH: return "tls";
  default: return "transport";
  }
}

/* Whether the request may have reached the server: not when we never got a connection. */
static int may_have_been_sent(CURL *e, CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT: return 0;
  default: break;
  }
  curl_off_t pretransfer = 0;
  curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
  return pretransfer > 0;
}

static void push_result(lua_State *L, xfer_t *x, CURLcode rc) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, x->id);
  lua_setfield(L, -2, "id");
  long connects = 0; /* new connections this transfer opened: 0 when it reused a kept-alive one */
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
  lua_pushinteger(L, connects);
  lua_setfield(L, -2, "connects");
  if (rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    push_headers(L, &x->res);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, x->res.body.p ? x->res.body.p : "", x->res.body.n);
    lua_setfield(L, -2, "body");
    return;
  }
  const char *kind = error_kind(rc, x->res.overflow);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "error");
  if (strcmp(kind, "response_too_large") == 0)
    lua_pushfstring(L, "response body larger than the %d-byte cap", (int)x->res.max_body);
  else if (x->res.overflow == CSMS_RESPONSE_HEADERS_TOO_LARGE)
    lua_pushliteral(L, "response headers larger than 64 KiB");
  else
    lua_pushstring(L, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, may_have_been_sent(x->easy, rc));
  lua_setfield(L, -2, "sent");
  lua_pushinteger(L, (lua_Integer)rc);
  lua_setfield(L, -2, "curl_code");
}

static void unlink_xfer(http_t *h, xfer_t *x) {
  for (xfer_t **pp = &h->active; *pp; pp = &(*pp)->next)
    if (*pp == x) {
      *pp = x->next;
      return;
    }
}

/* http:wait(timeout_seconds) -> array of results (empty when the time ran out first). Each
 * result is {id, connects, status, headers, body} or {id, connects, error, message, sent,
 * curl_code}. */
static int http_wait(lua_State *L) {
  http_t *h = check_http(L);
  double timeout = luaL_optnumber(L, 2, 0);
  long long deadline_ms = -1;
  if (timeout > 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + (long long)(timeout * 1000);
  }
  lua_newtable(L);
  int count = 0;
  for (;;) {
    int running = 0;
    curl_multi_perform(h->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      xfer_t *x = NULL;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
      CURLcode rc = m->data.result;
      curl_multi_remove_handle(h->multi, m->easy_handle);
      unlink_xfer(h, x);
      push_result(L, x, rc);
      lua_rawseti(L, -2, ++count);
      xfer_free(L, x);
    }
    if (count || !h->active) break;
    int wait_ms = 1000;
    if (deadline_ms >= 0) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      long long left_ms = deadline_ms - ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
      if (left_ms <= 0) break;
      if (left_ms < wait_ms) wait_ms = (int)left_ms;
    }
    curl_multi_poll(h->multi, NULL, 0, wait_ms, NULL);
  }
  return 1;
}

/* http:close(): ends what is in flight and the pool (again is a no-op); also __gc and __close,
 * so it must also undo an http_new that failed half-way. */
static int http_close(lua_State *L) {
  http_t *h = luaL_checkudata(L, 1, HTTP_MT);
  if (h->multi) {
    while (h->active) {
      xfer_t *x = h->active;
      h->active = x->next;
      curl_multi_remove_handle(h->multi, x->easy);
      xfer_free(L, x);
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
  }
  free(h->cafile);
  free(h->proxy);
  h->cafile = h->proxy = NULL;
  return 0;
}

static int http_tostring(lua_State *L) {
  http_t *h = luaL_checkudata(L, 1, HTTP_MT);
  lua_pushfstring(L, "csms.http (%s, timeout %d ms, connect %d ms)", h->multi ? "open" : "closed",
                  (int)h->timeout_ms, (int)h->connect_timeout_ms);
  return 1;
}

/* A copy of the string field, NULL when absent; raises when memory runs out (a NULL cafile
 * would mean the system's CAs instead of the one asked for). */
static char *opt_strdup(lua_State *L, int idx, const char *field) {
  lua_getfield(L, idx, field);
  char *r = NULL;
  if (lua_isstring(L, -1) && !(r = strdup(lua_tostring(L, -1)))) luaL_error(L, "out of memory");
  lua_pop(L, 1);
  return r;
}

static double opt_number(lua_State *L, int idx, const char *field, double dflt) {
  lua_getfield(L, idx, field);
  double r = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return r;
}

/* Seconds to libcurl's milliseconds, from 1 (0 would mean no timeout at all) to INT_MAX;
 * NaN gives 1. Converting a double outside long's range is undefined behaviour in C. */
static long timeout_ms(double seconds) {
  double ms = seconds * 1000;
  if (!(ms >= 1)) return 1;
  if (ms > INT_MAX) return INT_MAX;
  return (long)ms;
}

/* core.http.new{timeout=, connect_timeout=, verify_tls=, cafile=, proxy=, max_response=} */
static int http_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  http_t *h = csms_new_object(L, sizeof *h, HTTP_MT);
  h->timeout_ms = timeout_ms(opt_number(L, 1, "timeout", 30));
  h->connect_timeout_ms = timeout_ms(opt_number(L, 1, "connect_timeout", 10));
  h->max_body = (size_t)opt_number(L, 1, "max_response", 16 * 1024 * 1024);
  lua_getfield(L, 1, "verify_tls");
  h->verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  h->cafile = opt_strdup(L, 1, "cafile");
  h->proxy = opt_strdup(L, 1, "proxy");
  h->multi = curl_multi_init();
  if (!h->multi) return luaL_error(L, "curl_multi_init failed");
  return 1;
}

void csms_open_http(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"submit", http_submit}, {"wait", http_wait}, {"close", http_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"new", http_new}, {NULL, NULL}};
  csms_new_class(L, HTTP_MT, methods, http_close, http_tostring);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newlib(L, funcs);
}

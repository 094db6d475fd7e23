/* core.signer: the signer class over sign.c. core.signer.new(ak, sk[, token]) keeps the SK's
 * HMAC key schedule; core.signer.sign and core.signer.sign_request sign a request with it and
 * return the headers to send; core.signer.wipe(signer) frees it at once. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/crypto.h>

#include "buf.h"
#include "core.h"
#include "lua_aux.h"
#include "sign.h"

#define SIGNER_MT "csms.signer"

typedef struct {
  csms_signer_t *s;
  char *token; /* security token of temporary credentials, or NULL */
  size_t token_len;
  buf_t slices; /* csms_header_t scratch, kept between signatures */
  buf_t auth;   /* Authorization value scratch */
} signer_ud;

static int signer_gc(lua_State *L) {
  signer_ud *u = luaL_checkudata(L, 1, SIGNER_MT);
  csms_signer_free(u->s);
  u->s = NULL;
  buf_free(&u->slices);
  buf_free(&u->auth);
  if (u->token) {
    OPENSSL_cleanse(u->token, u->token_len);
    free(u->token);
    u->token = NULL;
  }
  return 0;
}

static int signer_tostring(lua_State *L) {
  luaL_checkudata(L, 1, SIGNER_MT);
  lua_pushliteral(L, "csms.signer (credentials hidden)");
  return 1;
}

static int has_ctl(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 1;
  return 0;
}

/* core.signer.new(ak, sk [, security_token]) -> signer | nil, message */
static int l_new(lua_State *L) {
  size_t akn, skn, tn = 0;
  const char *ak = luaL_checklstring(L, 1, &akn);
  const char *sk = luaL_checklstring(L, 2, &skn);
  const char *token = luaL_optlstring(L, 3, NULL, &tn);
  const char *bad = NULL;
  if (akn == 0 || has_ctl(ak, akn) || memchr(ak, ',', akn) || memchr(ak, ' ', akn))
    bad = "ak is empty or has spaces, commas or control characters";
  else if (skn == 0)
    bad = "sk is empty";
  else if (token && (tn == 0 || has_ctl(token, tn)))
    bad = "security_token is empty or has control characters";
  if (bad) return csms_fail(L, NULL, bad);
  signer_ud *u = csms_new_object(L, sizeof *u, SIGNER_MT);
  u->s = csms_signer_new(ak, akn, sk, skn);
  if (!u->s) return luaL_error(L, "out of memory");
  if (token) {
    u->token = malloc(tn + 1);
    if (!u->token) return luaL_error(L, "out of memory");
    memcpy(u->token, token, tn + 1);
    u->token_len = tn;
  }
  return 1;
}

/* The header names the binding treats apart, told from their length first. */
enum { H_OTHER, H_HOST, H_DATE, H_AUTHORIZATION, H_TOKEN };

/* Whether k equals lower (lower case) but for the case of ASCII letters: strncasecmp without
 * its locale lookup, on the hot path. */
static int eq_ascii_nocase(const char *k, const char *lower, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)k[i];
    if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)lower[i]) return 0;
  }
  return 1;
}

static int header_kind(const char *k, size_t n) {
  if (n < 4 || (k[0] | 0x20) != (n == 4 ? 'h' : n == 13 ? 'a' : 'x')) return H_OTHER;
  switch (n) {
  case 4: return eq_ascii_nocase(k, "host", 4) ? H_HOST : H_OTHER;
  case 10: return eq_ascii_nocase(k, "x-sdk-date", 10) ? H_DATE : H_OTHER;
  case 13: return eq_ascii_nocase(k, "authorization", 13) ? H_AUTHORIZATION : H_OTHER;
  case 16: return eq_ascii_nocase(k, "x-security-token", 16) ? H_TOKEN : H_OTHER;
  default: return H_OTHER;
  }
}

/* True when the set (a table) at idx holds the lower-cased name. */
static int in_set(lua_State *L, int idx, const char *name, size_t n) {
  if (n > 64) return 0;
  char low[65];
  for (size_t i = 0; i < n; i++) low[i] = (name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i];
  lua_pushlstring(L, low, n);
  lua_rawget(L, idx);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* The signing functions' upvalues: pushing a kept string is cheaper than lua_getfield with a C
 * string (Lua 5.4 looks that up in its string cache with a strcmp). */
enum { UV_MT = 1, UV_DATE, UV_AUTH, UV_TOKEN, UV_METHOD, UV_URL, UV_HEADERS, UV_BODY, UV_COUNT };
static const char *const UV_STRINGS[] = {"X-Sdk-Date", "Authorization", "X-Security-Token",
                                         "method",     "url",           "headers", "body"};
#define UV(i) lua_upvalueindex(i)

/* luaL_checkudata, against the metatable kept as an upvalue. */
static signer_ud *check_signer(lua_State *L, int idx) {
  signer_ud *u = lua_touserdata(L, idx);
  int ok = u && lua_getmetatable(L, idx);
  if (ok) {
    ok = lua_rawequal(L, -1, UV(UV_MT));
    lua_pop(L, 1);
  }
  if (!ok) luaL_argerror(L, idx, SIGNER_MT " expected");
  if (!u->s) luaL_error(L, "csms: signer used after it was freed");
  return u;
}

/* Signs with the headers table at hidx (and the unsigned set at set_idx, 0 for none); pushes
 * the new headers table [and the canonical request] or nil, message. */
static int sign_impl(lua_State *L, signer_ud *u, slice_t method, const char *url, size_t un,
                     int hidx, slice_t body, time_t now, int want_canonical, int set_idx) {
  csms_url_t pu;
  const char *err;
  if (csms_url_parse(url, un, &pu, &err)) return csms_fail(L, NULL, err);

  /* One pass: each header goes into the result as the very same string objects, and into the
   * slices csms_sign reads; the result table keeps those strings alive. */
  lua_createtable(L, 0, 8);
  const int res = lua_gettop(L);
  int have_host = 0, have_date = 0;
  size_t nh = 0;
  lua_pushnil(L);
  while (lua_next(L, hidx)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
      return luaL_error(L, "csms.sign: header names and values must be strings");
    size_t kn, vn;
    const char *k = lua_tolstring(L, -2, &kn);
    int kind = header_kind(k, kn);
    if (kind == H_AUTHORIZATION || (u->token && kind == H_TOKEN)) {
      lua_pop(L, 1); /* replaced below */
      continue;
    }
    have_host |= kind == H_HOST;
    have_date |= kind == H_DATE;
    const char *v = lua_tolstring(L, -1, &vn); /* a number becomes a string on the stack */
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, res);
    if (set_idx && in_set(L, set_idx, k, kn)) continue;
    if (buf_reserve(&u->slices, (nh + 3) * sizeof(csms_header_t)))
      return luaL_error(L, "out of memory");
    csms_header_t *h = (csms_header_t *)(void *)u->slices.p + nh++;
    h->name.p = k, h->name.n = kn, h->value.p = v, h->value.n = vn;
  }
  if (buf_reserve(&u->slices, (nh + 3) * sizeof(csms_header_t)))
    return luaL_error(L, "out of memory");
  csms_header_t *hs = (csms_header_t *)(void *)u->slices.p;
  if (!have_date) {
    const char *date = csms_signer_date(u->s, now); /* lives in the signer */
    lua_pushvalue(L, UV(UV_DATE));
    lua_pushlstring(L, date, 16);
    lua_rawset(L, res);
    hs[nh].name.p = "x-sdk-date", hs[nh].name.n = 10, hs[nh].value.p = date, hs[nh].value.n = 16;
    nh++;
  }
  if (u->token) {
    lua_pushvalue(L, UV(UV_TOKEN));
    lua_pushlstring(L, u->token, u->token_len);
    lua_rawset(L, res);
    hs[nh].name.p = "x-security-token", hs[nh].name.n = 16;
    hs[nh].value.p = u->token, hs[nh].value.n = u->token_len;
    nh++;
  }
  if (!have_host && !(set_idx && in_set(L, set_idx, "host", 4))) {
    hs[nh].name.p = "host", hs[nh].name.n = 4, hs[nh].value = pu.authority;
    nh++;
  }
  buf_t *auth = &u->auth, canonical = BUF_INIT;
  auth->n = 0;
  if (csms_sign(u->s, method, &pu, hs, nh, body, auth, want_canonical ? &canonical : NULL, &err)) {
    buf_free(&canonical);
    return csms_fail(L, NULL, err);
  }
  lua_pushvalue(L, UV(UV_AUTH));
  lua_pushlstring(L, auth->p, auth->n);
  lua_rawset(L, res);
  if (!want_canonical) return 1;
  lua_pushlstring(L, canonical.p ? canonical.p : "", canonical.n);
  buf_free(&canonical);
  return 2;
}

/* core.signer.sign(signer, method, url, headers, body, now [, want_canonical [, unsigned_set]])
 *   -> new headers table [, canonical request] | nil, message
 * The new table holds the given headers plus X-Sdk-Date (when absent), X-Security-Token (when
 * the signer has one) and Authorization. host is signed from the URL unless given. Names in
 * unsigned_set ({["host"] = true}, lower case) are sent but left out of the signature. */
static int l_sign(lua_State *L) {
  signer_ud *u = check_signer(L, 1);
  slice_t method, body = {"", 0};
  size_t un;
  method.p = luaL_checklstring(L, 2, &method.n);
  const char *url = luaL_checklstring(L, 3, &un);
  luaL_checktype(L, 4, LUA_TTABLE);
  body.p = luaL_optlstring(L, 5, "", &body.n);
  time_t now = lua_isnoneornil(L, 6) ? time(NULL) : (time_t)luaL_checkinteger(L, 6);
  int want_canonical = lua_toboolean(L, 7);
  int has_set = !lua_isnoneornil(L, 8);
  if (has_set) luaL_checktype(L, 8, LUA_TTABLE);
  lua_settop(L, 8);
  return sign_impl(L, u, method, url, un, 4, body, now, want_canonical, has_set ? 8 : 0);
}

/* core.signer.sign_request(signer, req [, unsigned_set [, want_canonical]])
 *   -> new headers table [, canonical request] | nil, message[, "misuse"]
 * core.signer.sign for a request table { method, url, headers?, body? } (csms.sign and
 * csms.canonical_request): the type checks they document, without a Lua call per field.
 * "misuse": req or a field of it has the wrong type; the caller raises, pointing at its own
 * caller (which C cannot see). */
static int l_sign_request(lua_State *L) {
  static const int OPTIONAL[] = {0, 0, 1, 1}; /* method, url, headers, body */
  static const int TYPES[] = {LUA_TSTRING, LUA_TSTRING, LUA_TTABLE, LUA_TSTRING};
  signer_ud *u = check_signer(L, 1);
  int has_set = !lua_isnoneornil(L, 3);
  if (has_set) luaL_checktype(L, 3, LUA_TTABLE);
  int want_canonical = lua_toboolean(L, 4);
  lua_settop(L, 3);
  if (lua_type(L, 2) != LUA_TTABLE)
    return csms_failf(L, "misuse", "request must be a table, got %s", luaL_typename(L, 2));
  for (int i = 0; i < 4; i++) {
    lua_pushvalue(L, UV(UV_METHOD + i));
    lua_gettable(L, 2); /* stack 4..7: method, url, headers, body */
    int t = lua_type(L, -1);
    if (t != TYPES[i] && !(t == LUA_TNIL && OPTIONAL[i]))
      return csms_failf(L, "misuse", "request.%s must be a %s%s, got %s",
                        lua_tostring(L, UV(UV_METHOD + i)), lua_typename(L, TYPES[i]),
                        OPTIONAL[i] ? " or nil" : "", lua_typename(L, t));
  }
  if (lua_isnil(L, 6)) {
    lua_newtable(L);
    lua_replace(L, 6);
  }
  slice_t method, body = {"", 0};
  size_t un;
  method.p = lua_tolstring(L, 4, &method.n);
  const char *url = lua_tolstring(L, 5, &un);
  if (!lua_isnil(L, 7)) body.p = lua_tolstring(L, 7, &body.n);
  return sign_impl(L, u, method, url, un, 6, body, time(NULL), want_canonical, has_set ? 3 : 0);
}

void csms_open_signer(lua_State *L) {
  static const luaL_Reg funcs[] = {{"new", l_new}, {"wipe", signer_gc}, {NULL, NULL}};
  static const luaL_Reg sign_funcs[] = {{"sign", l_sign}, {"sign_request", l_sign_request},
                                        {NULL, NULL}};
  csms_new_class(L, SIGNER_MT, NULL, signer_gc, signer_tostring);
  luaL_newlib(L, funcs);
  luaL_getmetatable(L, SIGNER_MT);
  for (int i = UV_DATE; i < UV_COUNT; i++) lua_pushstring(L, UV_STRINGS[i - UV_DATE]);
  luaL_setfuncs(L, sign_funcs, UV_COUNT - 1);
}

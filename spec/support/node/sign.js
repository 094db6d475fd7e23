#!/usr/bin/env node
// Signs requests with the official Huawei Cloud Node.js signer
// (@huaweicloud/huaweicloud-sdk-core, auth/AKSKSigner), one process for a whole batch.
//
// stdin:  JSON array of {method, url, headers?, query?: [[k, v], ...], body_json?, ak, sk, date?}
//         url is scheme://host[:port]/path (no query: the query goes in `query`);
//         date (optional, YYYYMMDDTHHMMSSZ) fixes X-Sdk-Date instead of now.
// stdout: JSON array of {headers, body, url, query_string}: headers are everything to send
//         (the given ones plus host, X-Sdk-Date, Authorization), body is JSON.stringify(body_json)
//         (or null): send exactly those bytes; url includes the encoded query string.
// Note: the signer signs every header it is given and does not trim values.
'use strict';
const { AKSKSigner } = require('@huaweicloud/huaweicloud-sdk-core/auth/AKSKSigner');

function encode(s) {
  return AKSKSigner.urlEncode(String(s));
}

function signOne(r) {
  const headers = Object.assign({}, r.headers || {});
  if (r.date) headers['X-Sdk-Date'] = r.date;
  const queryParams = {};
  const parts = [];
  for (const [k, v] of r.query || []) {
    if (Object.prototype.hasOwnProperty.call(queryParams, k)) {
      if (!Array.isArray(queryParams[k])) queryParams[k] = [queryParams[k]];
      queryParams[k].push(String(v));
    } else {
      queryParams[k] = String(v);
    }
    parts.push(encode(k) + '=' + encode(v));
  }
  const request = {
    method: r.method,
    endpoint: r.url,
    headers,
    queryParams,
    data: r.body_json === undefined || r.body_json === null ? undefined : r.body_json,
  };
  const credential = { getAk: () => r.ak, getSk: () => r.sk };
  // (sign() sorts repeated query values in place; the URL keeps the order given, from `parts`)
  const signed = AKSKSigner.sign(request, credential);
  if (r.date) {
    // the signer used its own formatting of the given date in the string to sign; the header
    // value must be the very string given
    signed['X-Sdk-Date'] = r.date;
  }
  const qs = parts.join('&');
  return {
    headers: signed,
    body: request.data === undefined ? null : JSON.stringify(request.data),
    url: r.url + (qs ? '?' + qs : ''),
    query_string: qs,
  };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const list = JSON.parse(input);
  const out = list.map(signOne);
  process.stdout.write(JSON.stringify(out));
});

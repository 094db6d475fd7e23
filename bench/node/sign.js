#!/usr/bin/env node
// The official Huawei Cloud Node.js signer (@huaweicloud/huaweicloud-sdk-core, AKSKSigner.sign)
// on the same requests as bench/sign.lua.
//
//   lua5.4 bench/sign.lua --spec > spec.json
//   node bench/node/sign.js spec.json ITERATIONS RUNS     # one line per request, as sign.lua's
//   node bench/node/sign.js spec.json --check DATE        # each Authorization at X-Sdk-Date DATE
//
// A request is handed to the signer the way the SDK's HcClient does (BaseCredentials
// .processAuthRequest): {method, endpoint: full URL, headers, queryParams: {}, data: the JSON body
// as an object}; the signer hashes JSON.stringify(data), which is the body's exact bytes here. Each
// call formats the current date (moment) like the SDK; one discarded warm-up run, then the median.
'use strict';
const fs = require('fs');

// Installed by bench/run: npm install --prefix bench/node (bench/node/package.json).
const SDK = '@huaweicloud/huaweicloud-sdk-core';
const { AKSKSigner } = require(`${SDK}/auth/AKSKSigner`);

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const credential = { getAk: () => spec.ak, getSk: () => spec.sk };

// The body as the SDK's callers hold it, an object (parsed once: parsing is not signing).
for (const r of spec.requests) r.data = r.body === null ? undefined : JSON.parse(r.body);

function request(r, date) {
  // The signer adds a lower-case `host` itself (from the URL, or this header when given under that
  // name); given as `Host` it would be signed twice.
  const headers = {};
  for (const [k, v] of Object.entries(r.headers)) headers[k.toLowerCase() === 'host' ? 'host' : k] = v;
  if (date) headers['X-Sdk-Date'] = date;
  return {
    method: r.method,
    endpoint: r.url,
    headers,
    queryParams: {},
    data: r.data,
  };
}

if (process.argv[3] === '--check') {
  for (const r of spec.requests) {
    const signed = AKSKSigner.sign(request(r, process.argv[4]), credential);
    console.log(`${r.name} ${signed.Authorization}`);
  }
  process.exit(0);
}

const iters = parseInt(process.argv[3] || '20000', 10);
const runs = parseInt(process.argv[4] || '5', 10);

function run(r, n) {
  // A fresh request object per call, as a client builds one per call.
  for (let i = 0; i < n; i++) {
    const signed = AKSKSigner.sign(request(r), credential);
    if (!signed.Authorization) throw new Error('no signature');
  }
}

function median(a) {
  a.sort((x, y) => x - y);
  const n = a.length;
  return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

for (const r of spec.requests) {
  run(r, iters); // warm-up (and JIT)
  const rates = [];
  for (let k = 0; k < runs; k++) {
    const t0 = process.hrtime.bigint();
    run(r, iters);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rates.push(iters / s);
  }
  console.log(`sign node ${r.name} ${median(rates).toFixed(1)}`);
}

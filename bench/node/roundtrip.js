#!/usr/bin/env node
// DownloadSecretBlob round trips through the official Node.js SDK core (HcClient), built and
// called the way the generated CsmsClient does (ClientBuilder + BasicCredentials; per call the
// options { method, url with {project_id} and {secret_name}, contentType, queryParams,
// pathParams, headers } and responseHeaders, then hcClient.sendRequest). One call at a time,
// awaited, on Node's default keep-alive agent (Node >= 19), so one connection is kept.
//
//   BENCH_ENDPOINT=.. BENCH_AK=.. BENCH_SK=.. BENCH_PROJECT_ID=.. BENCH_SECRET=name \
//     node bench/node/roundtrip.js ITERATIONS RUNS
// prints "roundtrip node <median requests/s> <new connections> <CPU us per request>" (new
// connections and process.cpuUsage() over the timed runs).
'use strict';
const http = require('http');

// Installed by bench/run: npm install --prefix bench/node (bench/node/package.json).
const SDK = '@huaweicloud/huaweicloud-sdk-core';
const { ClientBuilder } = require(`${SDK}/ClientBuilder`);
const { BasicCredentials } = require(`${SDK}/auth/BasicCredentials`);

const env = process.env;
const iters = parseInt(process.argv[2] || '1000', 10);
const runs = parseInt(process.argv[3] || '5', 10);

// What a generated service client is: a class around the HcClient the builder hands it.
class BenchCsmsClient {
  constructor(hcClient) { this.hcClient = hcClient; }
  getPath() { return __dirname; }
  downloadSecretBlob(req) {
    const options = {
      method: 'POST',
      url: '/v1/{project_id}/secrets/{secret_name}/backup',
      contentType: 'application/json',
      queryParams: {},
      pathParams: { secret_name: req.secret_name },
      headers: {},
    };
    options.responseHeaders = [''];
    return this.hcClient.sendRequest(options);
  }
}

const credentials = new BasicCredentials()
  .withAk(env.BENCH_AK).withSk(env.BENCH_SK).withProjectId(env.BENCH_PROJECT_ID);
const client = new ClientBuilder((hc) => new BenchCsmsClient(hc))
  .withEndpoint(env.BENCH_ENDPOINT)
  .withCredential(credentials)
  .build();

let connections = 0;
const origCreate = http.globalAgent.createConnection.bind(http.globalAgent);
http.globalAgent.createConnection = (...a) => { connections++; return origCreate(...a); };

async function run(n) {
  for (let i = 0; i < n; i++) {
    const res = await client.downloadSecretBlob({ secret_name: env.BENCH_SECRET });
    if (res.httpStatusCode !== 200 || typeof res.secret_blob !== 'string') {
      throw new Error(`unexpected answer: ${res.httpStatusCode}`);
    }
  }
}

function median(a) {
  a.sort((x, y) => x - y);
  const n = a.length;
  return n % 2 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

(async () => {
  if (!http.globalAgent.keepAlive) console.error('roundtrip.js: the default agent does not keep alive');
  await run(Math.min(iters, 200)); // warm-up
  connections = 0;
  const cpu0 = process.cpuUsage();
  const rates = [];
  for (let k = 0; k < runs; k++) {
    const t0 = process.hrtime.bigint();
    await run(iters);
    rates.push(iters / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  const cpu = process.cpuUsage(cpu0);
  const us = (cpu.user + cpu.system) / (iters * runs);
  console.log(`roundtrip node ${median(rates).toFixed(1)} ${connections} ${us.toFixed(1)}`);
})().catch((e) => {
  console.error('roundtrip.js:', e && (e.message || JSON.stringify(e)));
  process.exit(1);
});

// router_tls.mjs - the router's cloud client over HTTPS (tests/test_router_tls.sh
// runs it, after making two self-signed certificates in ROUTER_TMP:
// localhost.crt for 127.0.0.1 and localhost, other.crt for example.org).
// Two fault upstreams serve https, one with each certificate; one hearthd
// with a local model has three upstreams:
//   untrusted  the localhost server, no ca_file: the system's CAs refuse it
//   trusted    the same server with ca_file = localhost.crt
//   othername  the example.org server with ca_file = other.crt: trusted,
//              but not for 127.0.0.1 (the host name check)
// Each upstream has a key; it must reach the trusted server only, in its
// Authorization header, and never a log.
//
// Environment: HEARTHD (the binary), HEARTH_TEST_DATA (the shared data),
// ROUTER_TMP (the scratch directory with the certificates).
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  call, checker, parseStream, readLog, startFault, startHearthd, stopHearthd, waitFor,
} from './router_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const HEARTHD = process.env.HEARTHD;
const DATA = process.env.HEARTH_TEST_DATA;
const TMP = process.env.ROUTER_TMP;
const KEY = `hk-tls-${process.pid}-${Date.now().toString(36)}-Zq7`;
const LOCAL_ID = 'stories260K';
const { st, check, expect } = checker();
const cert = (name) => join(TMP, `${name}.crt`);
const tlsArgs = (name) => ['--tls', cert(name), join(TMP, `${name}.key`)];

const good = await startFault(join(here, 'fault_upstream.mjs'), join(TMP, 'fault-localhost.log'),
                              tlsArgs('localhost'));
const other = await startFault(join(here, 'fault_upstream.mjs'), join(TMP, 'fault-other.log'),
                               tlsArgs('other'));

// The fault server's control endpoints, trusting its certificate (the name
// checked: the one in it).
function control(f, path, ca) {
  const servername = f === other ? 'example.org' : 'localhost';
  return new Promise((resolve, reject) => {
    https.get(f.url + path, { ca: readFileSync(ca), servername }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}
const records = async (f, ca) => JSON.parse(await control(f, '/_requests', ca));

const ups = {
  untrusted: [good, null],
  trusted: [good, cert('localhost')],
  othername: [other, cert('other')],
};
let conf = `[router]\ndefault = local\nstate_dir = ${join(TMP, 'state')}\n` +
  'cooldown_failures = 1000\nmax_queue_wait = 0\n';
for (const [name, [f, ca]] of Object.entries(ups)) {
  conf += `\n[upstream.${name}]\nurl = ${f.url}/v1\nmodel = ok\ntimeout = 10\n` +
    `connect_timeout = 5\napi_key_env = HEARTH_TEST_UPSTREAM_KEY\n${ca ? `ca_file = ${ca}\n` : ''}`;
}
const confPath = join(TMP, 'tls.conf');
writeFileSync(confPath, conf);
const H = await startHearthd(HEARTHD, 'tls', [
  '--threads', '1', '--context', '512', '--parallel', '2', '--log-level', 'debug',
  '--config', confPath, '--model', join(DATA, 'models', 'stories260K.gguf'),
], join(TMP, 'hearthd-tls.log'), { HEARTH_TEST_UPSTREAM_KEY: KEY });

const chat = (model, extra = {}) => ({
  model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 8, temperature: 0, ...extra,
});

function expectRoute(r, route, reason) {
  expect(r.route === route && r.reason === reason, `X-Hearth-Route ${route} (${reason})`,
         { route: r.route, reason: r.reason, status: r.status, body: r.text });
}

// the answer of the local model, stream or not
function expectLocal(r, streamed) {
  expectRoute(r, 'local', 'cloud-error-fallback');
  expect(r.status === 200, 'status 200', r.text);
  if (!streamed) {
    expect(r.json && r.json.model === LOCAL_ID && r.json.choices[0].message.content.length > 0,
           `some text of ${LOCAL_ID}`, r.text);
    return;
  }
  const s = parseStream(r.text);
  expect(s.done && s.errors.length === 0 && s.chunks.every((c) => c.model === LOCAL_ID) &&
         s.content.length > 0, `a stream of ${LOCAL_ID} ending with [DONE]`, r.text);
}

// Section n: upstream `name` fails, whole and streamed; the local model answers.
async function fallsBack(n, name) {
  for (const s of [false, true]) {
    await check(`${n} ${name} (${s ? 'stream' : 'non-stream'}): local, cloud-error-fallback`,
      async () => {
        const r = await call(H.url, '/v1/chat/completions',
                             { body: chat(name, s ? { stream: true } : {}) });
        expectLocal(r, s);
      });
  }
}

// The log's failure lines for upstream `name`, once there are n of them.
async function failures(name, n) {
  const re = new RegExp(` route: \\S+: cloud:${name} answered 0, failed: (.*), \\d+ tokens`, 'g');
  return waitFor(`${n} failure line(s) of ${name} in the log`, 10000, () => {
    const m = [...readLog(H.log).matchAll(re)].map((x) => x[1]);
    return m.length >= n && m;
  });
}

// ---- 1. a certificate hearthd does not trust: the local model answers
await fallsBack(1, 'untrusted');
await check('1 untrusted: the log names the certificate, no request reached the server', async () => {
  const why = await failures('untrusted', 2);
  expect(why.length === 2 && why.every((w) => /certificate/i.test(w) && /self[- ]signed/i.test(w)),
         'two failures naming the self-signed certificate', why);
  expect((await records(good, cert('localhost'))).length === 0,
         'nothing past the handshake', await records(good, cert('localhost')));
});

// ---- 2. the same server with ca_file: answered by the cloud
await check('2 trusted (non-stream): cloud:trusted, the upstream\'s answer, the key sent', async () => {
  const r = await call(H.url, '/v1/chat/completions', { body: chat('trusted') });
  expectRoute(r, 'cloud:trusted', 'model');
  expect(r.status === 200 && r.json && r.json.model === 'fault-ok' &&
         r.json.choices[0].message.content === 'The fault server says hello.',
         'the fault server\'s answer', r.text);
  const recs = await records(good, cert('localhost'));
  expect(recs.length === 1 && recs[0].headers.authorization === `Bearer ${KEY}`,
         'one request, with the key in its Authorization header',
         recs.map((x) => ({ url: x.url, auth: x.headers.authorization ? 'set' : 'none' })));
});
await check('2 trusted (stream): the upstream\'s bytes', async () => {
  const r = await call(H.url, '/v1/chat/completions', { body: chat('trusted', { stream: true }) });
  expectRoute(r, 'cloud:trusted', 'model');
  const want = await control(good, '/_expected?kind=chat&usage=0', cert('localhost'));
  expect(r.status === 200 && r.text === want, 'the exact bytes', { got: r.text, want });
  const line = await waitFor('the answered line', 10000, () =>
    /route: \S+: cloud:trusted answered 200, /.test(readLog(H.log)));
  expect(line, 'an answered line', '');
});

// ---- 3. a trusted certificate for another name: refused by the host name check
await fallsBack(3, 'othername');
await check('3 othername: the log names the name mismatch, no request reached the server', async () => {
  const why = await failures('othername', 2);
  expect(why.length === 2 && why.every((w) => /subject name|host ?name|match/i.test(w) &&
                                              !/self[- ]signed/i.test(w)),
         'two failures naming the host name', why);
  expect((await records(other, cert('other'))).length === 0, 'nothing past the handshake', '');
});

// ---- the end
const code = await stopHearthd(H);
for (const f of [good, other]) {
  f.child.kill('SIGTERM');
  await f.child.exited;
}
await check('hearthd exits 0, no sanitizer report, the key in no log', async () => {
  const log = readLog(H.log);
  expect(code === 0, 'exit 0', code);
  expect(!/Sanitizer|runtime error:/.test(log), 'no sanitizer report', log.slice(-3000));
  for (const f of [H.log, good.log, other.log])
    expect(!readLog(f).includes(KEY), `no key in ${f}`, 'the key');
});

console.log(`${st.passed} passed, ${st.failed} failed`);
process.exit(st.failed ? 1 : 0);

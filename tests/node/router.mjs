// router.mjs - the router end to end (tests/test_router.sh runs it): a
// fault-injecting upstream (fault_upstream.mjs), a "cloud" hearthd serving
// stories260K, and hearthds under test with a local model and upstreams
// that each name one behaviour of the fault server. The checks are
// numbered by topic: 1 a real upstream, 2 bytes relayed, 3 fallbacks,
// 4 4xx passed through, 5 broken streams, 6 cool-down, 7 routing controls,
// 8 privacy, 9 keys and logs, 10 budget, 11 no local model, 13 Messages
// and Responses forwarded, 14 the policy's other paths (context, queue,
// unsupported, fallback off, battery, token budget)
// (docs/router.md, "How it is tested").
//
// Environment: HEARTHD (the binary), HEARTH_TEST_DATA (the shared data),
// ROUTER_TMP (a scratch directory for configs, state and logs).
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  call, checker, deadPort, openStream, parseStream, readLog, reload, startFault, startHearthd,
  stopHearthd, waitFor, within,
} from './router_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const HEARTHD = process.env.HEARTHD;
const DATA = process.env.HEARTH_TEST_DATA;
const TMP = process.env.ROUTER_TMP;
const KEY = `hk-marker-${process.pid}-${Date.now().toString(36)}-Zq7`;
const EMAIL = `jane.doe.${process.pid}@example.org`;
// more private data, each of its kind; none may reach a log
const uniq = `${process.pid}${Date.now()}`;
const PRIVATE = {
  card: '5555 5555 5555 4444',
  iban: 'GB82 WEST 1234 5698 7654 32',
  secret: `sk-${Buffer.from(uniq).toString('base64').replace(/[^A-Za-z0-9]/g, '')}Zq7x9Lm2Pw4`,
  custom: `HKCASE-${uniq.slice(-6)}`,
};
const LOCAL_ID = 'local260K';   // the local model: stories260K under another name
const CLOUD_ID = 'stories260K'; // the cloud hearthd's model
const { st, check, xfail, expect } = checker();
const t0 = Date.now();

// the local model under a name of its own, so answers tell who gave them
mkdirSync(join(TMP, 'models'), { recursive: true });
mkdirSync(join(TMP, 'sysfs'), { recursive: true }); // no battery, no heat
const localModel = join(TMP, 'models', `${LOCAL_ID}.gguf`);
symlinkSync(join(DATA, 'models', 'stories260K.gguf'), localModel);
const common = ['--threads', '1', '--context', '512', '--parallel', '2'];

const fault = await startFault(join(here, 'fault_upstream.mjs'), join(TMP, 'fault.log'));
const cloud = await startHearthd(HEARTHD, 'cloud', [...common, '--model',
  join(DATA, 'models', 'stories260K.gguf')], join(TMP, 'hearthd-cloud.log'));
const refusedPort = await deadPort();

const BEHAVIOURS = {
  ok: 'ok', echo: 'echo', e500: 'status-500', e401: 'status-401', e429: 'status-429',
  e400: 'status-400', slow: 'slow-headers', drop: 'drop-mid-stream', malformed: 'malformed',
  never: 'never-ends', empty: 'empty-200', cool: 'status-500', gated: 'gated',
  g500: 'gated-500', cutStatus: 'cut-status', cutHeaders: 'cut-headers', cutEvent: 'cut-event',
  short: 'short-body', reset: 'reset',
};

// A configuration file: [router], [privacy], [budget] and the upstreams.
// router: more [router] lines; budgetTokens: [budget] tokens_per_hour.
function conf({ state, cooldownFailures = 1000, cooldown = 60, action = 'local', budget = 0,
                ups = ['real', ...Object.keys(BEHAVIOURS), 'refused'], router = '',
                sysfs = join(TMP, 'sysfs'), budgetTokens = 0 }) {
  let s = `[router]\ndefault = local\nstate_dir = ${state}\nsysfs_root = ${sysfs}\n` +
    `cooldown = ${cooldown}\ncooldown_failures = ${cooldownFailures}\nmax_queue_wait = 0\n` +
    `${router}\n[privacy]\naction = ${action}\npattern = \\bHKCASE-[0-9]{6}\\b\n\n[budget]\nrequests_per_hour = ${budget}\n` +
    `tokens_per_hour = ${budgetTokens}\n`;
  for (const name of ups) {
    const url = name === 'real' ? `${cloud.url}/v1`
      : name === 'refused' ? `http://127.0.0.1:${refusedPort}/v1` : `${fault.url}/v1`;
    const model = name === 'real' ? CLOUD_ID : name === 'refused' ? 'ok' : BEHAVIOURS[name];
    s += `\n[upstream.${name}]\nurl = ${url}\nmodel = ${model}\n` +
      `timeout = ${name === 'real' || BEHAVIOURS[name]?.startsWith('gated') ? 60 : 2}\n` +
      'connect_timeout = 2\n';
    if (name === 'echo') s += 'api_key_env = HEARTH_TEST_UPSTREAM_KEY\n';
  }
  return s;
}

const confA = join(TMP, 'a.conf'), confB = join(TMP, 'b.conf'), confC = join(TMP, 'c.conf');
const optsA = { state: join(TMP, 'state-a') };
writeFileSync(confA, conf(optsA));
let budgetState = join(TMP, 'state-b');
writeFileSync(confB, conf({ state: budgetState, budget: 2, ups: ['ok'] }));
writeFileSync(confC, conf({ state: join(TMP, 'state-c'), ups: ['real'] }));
const keyEnv = { HEARTH_TEST_UPSTREAM_KEY: KEY };
const [A, B0, C] = await Promise.all([
  // A logs at debug level: whatever it can log is searched for the key
  startHearthd(HEARTHD, 'A', [...common, '--log-level', 'debug', '--config', confA,
                              '--model', localModel],
               join(TMP, 'hearthd-a.log'), keyEnv),
  startHearthd(HEARTHD, 'B', [...common, '--config', confB, '--model', localModel],
               join(TMP, 'hearthd-b.log')),
  startHearthd(HEARTHD, 'C', [...common, '--config', confC], join(TMP, 'hearthd-c.log')),
]);
let B = B0;
const daemons = [cloud, A, B, C];
console.log(`# started in ${Date.now() - t0} ms: fault ${fault.port}, cloud ${cloud.port}, ` +
            `A ${A.port}, B ${B.port}, C ${C.port}`);

const chat = (model, content, extra = {}) => ({
  ...(model ? { model } : {}), messages: [{ role: 'user', content }], max_tokens: 8,
  temperature: 0, ...extra,
});
const stream = { stream: true };
const withUsage = { stream: true, stream_options: { include_usage: true } };
const sdk = new OpenAI({ baseURL: `${A.url}/v1`, apiKey: 'unused', maxRetries: 0 });
const faultRecords = async () => (await call(fault.url, '/_requests')).json;
const upstreamHealth = async (d, name) =>
  (await call(d.url, '/health')).json.router.upstreams.find((u) => u.name === name);

function expectRoute(r, route, reason) {
  expect(r.route === route, `X-Hearth-Route ${route}`, { route: r.route, status: r.status, body: r.text });
  if (reason instanceof RegExp)
    expect(reason.test(r.reason || ''), `X-Hearth-Route-Reason ${reason}`, r.reason);
  else if (reason)
    expect(r.reason === reason, `X-Hearth-Route-Reason ${reason}`, r.reason);
}

// a local answer from the local model, stream or not
function expectLocalAnswer(r, streamed) {
  expect(r.status === 200, 'status 200', { status: r.status, body: r.text });
  if (!streamed) {
    expect(r.json && r.json.model === LOCAL_ID, `model ${LOCAL_ID}`, r.text);
    expect(r.json.choices[0].message.content.length > 0, 'some text', r.text);
    return;
  }
  const s = parseStream(r.text);
  expect(s.done && s.errors.length === 0, 'a stream ending with [DONE], no error', r.text);
  expect(s.chunks.every((c) => c.model === LOCAL_ID), `chunks of ${LOCAL_ID}`, r.text);
  expect(s.content.length > 0, 'some text', r.text);
}

// ---- 1. a real upstream (another hearthd)
await check('1 model "real", non-stream: cloud:real, the cloud model, usage', async () => {
  const r = await call(A.url, '/v1/chat/completions', { body: chat('real', 'Once upon a time') });
  expect(r.status === 200, 'status 200', r);
  expectRoute(r, 'cloud:real', 'model');
  expect(r.json.model === CLOUD_ID, `body model ${CLOUD_ID}`, r.text);
  expect(r.json.usage && r.json.usage.completion_tokens > 0, 'usage', r.text);
  expect(r.json.choices[0].message.content.length > 0, 'some text', r.text);
});
await check('1 model "real", stream with include_usage: chunks, usage, [DONE]', async () => {
  const r = await call(A.url, '/v1/chat/completions',
                       { body: chat('real', 'Once upon a time', withUsage) });
  expectRoute(r, 'cloud:real', 'model');
  expect(/^text\/event-stream/.test(r.type || ''), 'text/event-stream', r.type);
  const s = parseStream(r.text);
  expect(s.done && s.errors.length === 0, 'ends with [DONE], no error', r.text);
  expect(s.chunks.every((c) => c.model === CLOUD_ID), `chunks of ${CLOUD_ID}`, r.text);
  expect(s.content.length > 0, 'some text', r.text);
  const u = s.chunks.filter((c) => c.usage);
  expect(u.length === 1 && u[0].usage.completion_tokens > 0, 'one usage chunk', r.text);
});
await check('1 model "real": the openai SDK streams it', async () => {
  const it = await sdk.chat.completions.create(chat('real', 'Once upon a time', stream));
  let text = '', finish = null, model = null;
  for await (const c of it) {
    model = c.model;
    if (c.choices[0] && c.choices[0].delta.content) text += c.choices[0].delta.content;
    if (c.choices[0] && c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  expect(model === CLOUD_ID && text.length > 0 && finish, 'text and a finish_reason',
         { model, text, finish });
});

// ---- 2. byte for byte
for (const [kind, path] of [['chat', '/v1/chat/completions'], ['completion', '/v1/completions']]) {
  const body = (extra, model = 'ok') => (kind === 'chat' ? chat(model, 'hello', extra)
    : { model, prompt: 'hello', max_tokens: 8, ...extra });
  await check(`2 "ok" ${kind} stream: the upstream's bytes less the usage chunk hearth asked for`,
    async () => {
      await call(fault.url, '/_reset');
      const r = await call(A.url, path, { body: body(stream) });
      const want = (await call(fault.url, `/_expected?kind=${kind}&usage=0`)).text;
      expectRoute(r, 'cloud:ok', 'model');
      expect(r.text === want, 'the exact bytes', { got: r.text, want });
      const rec = (await faultRecords()).pop();
      expect(rec.body.stream_options && rec.body.stream_options.include_usage === true,
             'hearth asked the upstream for usage', rec.body);
    });
  await check(`2 "ok" ${kind} stream with include_usage: byte-identical`, async () => {
    const r = await call(A.url, path, { body: body(withUsage) });
    const want = (await call(fault.url, `/_expected?kind=${kind}&usage=1`)).text;
    expect(r.text === want, 'the exact bytes', { got: r.text, want });
  });
  await check(`2 "gated" ${kind} stream: the first chunk reaches the client before the upstream sends more`,
    async () => {
      const want = (await call(fault.url, `/_expected?kind=${kind}&usage=0`)).text;
      const events = want.split(/(?<=\n\n)/);
      const first = events.slice(0, kind === 'chat' ? 2 : 1).join(''); // up to "The"
      const s = await openStream(A.url, path, body(stream, 'gated'));
      expect(s.status === 200 && s.route === 'cloud:gated', 'cloud:gated, 200', s);
      await s.read((t) => t.length >= first.length, 10000, 'the first chunk while the upstream waits');
      expect(s.text === first, 'the first chunk exactly, and nothing more yet', { got: s.text, first });
      const held = (await call(fault.url, '/_held')).json.held;
      expect(held === 1, 'the upstream still holds the rest', held);
      await call(fault.url, '/_release');
      await s.read(() => false, 10000, 'the rest of the stream');
      expect(s.text === want, 'then the rest: the exact bytes', { got: s.text, want });
    });
}

// ---- 3. fallbacks before any byte
{
  const cases = ['e500', 'slow', 'refused', 'empty'].flatMap((n) => [[n, false], [n, true]]);
  await call(fault.url, '/_reset');
  const results = await Promise.all(cases.map(([n, s]) =>
    call(A.url, '/v1/chat/completions', { body: chat(n, 'Once upon a time', s ? stream : {}) })));
  const recs = await faultRecords();
  for (let i = 0; i < cases.length; i++) {
    const [n, s] = cases[i];
    await check(`3 ${n} (${s ? 'stream' : 'non-stream'}): local, cloud-error-fallback`, async () => {
      const r = results[i];
      expectRoute(r, 'local', 'cloud-error-fallback');
      expectLocalAnswer(r, s);
      if (n !== 'refused')
        expect(recs.some((x) => x.body.model === BEHAVIOURS[n] && !!x.body.stream === s),
               'the upstream was tried', recs.map((x) => x.body.model));
    });
  }
}

// ---- 4. 4xx passed through
for (const n of ['e401', 'e429', 'e400']) {
  for (const s of [false, true]) {
    await check(`4 ${n} (${s ? 'stream' : 'non-stream'}): the upstream's status and body`, async () => {
      const direct = await call(fault.url, '/v1/chat/completions', { body: chat(BEHAVIOURS[n], 'x') });
      const r = await call(A.url, '/v1/chat/completions', { body: chat(n, 'hello', s ? stream : {}) });
      expectRoute(r, `cloud:${n}`, 'model');
      expect(r.status === direct.status, `status ${direct.status}`, { status: r.status, body: r.text });
      expect(r.text === direct.text, 'the body as sent', { got: r.text, want: direct.text });
    });
  }
}

// ---- 5. failures after the stream started
{
  const firsts = { drop: 2, malformed: 1, never: 1 };
  const names = Object.keys(firsts);
  const raw = await Promise.all(names.map((n) =>
    call(A.url, '/v1/chat/completions', { body: chat(n, 'hello', stream) })));
  const viaSdk = await Promise.all(names.map(async (n) => {
    let text = '';
    try {
      for await (const c of await sdk.chat.completions.create(chat(n, 'hello', stream)))
        if (c.choices[0] && c.choices[0].delta.content) text += c.choices[0].delta.content;
      return { text, error: null };
    } catch (e) {
      return { text, error: e };
    }
  }));
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    await check(`5 ${n}: the first chunks, one error event, [DONE]`, async () => {
      const r = raw[i];
      expect(r.status === 200, 'status 200', r);
      expectRoute(r, `cloud:${n}`, 'model');
      const s = parseStream(r.text);
      expect(s.chunks.length === firsts[n], `${firsts[n]} chunk(s) first`, r.text);
      expect(s.errors.length === 1 && s.data.length === firsts[n] + 2 && s.done &&
             JSON.parse(s.data[firsts[n]]).error, 'then one error event and [DONE]', r.text);
      expect(typeof s.errors[0].error.message === 'string', 'the error has a message', s.errors[0]);
    });
    await check(`5 ${n}: the openai SDK raises an APIError after the first text`, async () => {
      const { text, error } = viaSdk[i];
      expect(error instanceof OpenAI.APIError, 'an APIError', error ? String(error) : 'no error');
      expect(text === ['The', ' fault'].slice(0, firsts[n]).join(''), 'the first text first', text);
    });
  }
}

// the upstream cut at each point: before any byte reached the client the
// local model answers; after, the stream ends with an error event
{
  const before = [['cutStatus', false], ['cutStatus', true], ['cutHeaders', false],
                  ['cutHeaders', true], ['short', false], ['reset', false]];
  const results = await Promise.all(before.map(([n, s]) =>
    call(A.url, '/v1/chat/completions', { body: chat(n, 'Once upon a time', s ? stream : {}) })));
  for (let i = 0; i < before.length; i++) {
    const [n, s] = before[i];
    await check(`5 ${BEHAVIOURS[n]} (${s ? 'stream' : 'non-stream'}): local, cloud-error-fallback`,
      async () => {
        expectRoute(results[i], 'local', 'cloud-error-fallback');
        expectLocalAnswer(results[i], s);
      });
  }
  const firsts = { cutEvent: 1, short: 2 };
  const after = await Promise.all(Object.keys(firsts).map((n) =>
    call(A.url, '/v1/chat/completions', { body: chat(n, 'hello', stream) })));
  for (const [i, n] of Object.keys(firsts).entries()) {
    await check(`5 ${BEHAVIOURS[n]} (stream): the first chunks, one error event, [DONE]`, async () => {
      const r = after[i];
      expectRoute(r, `cloud:${n}`, 'model');
      const s = parseStream(r.text);
      expect(r.status === 200 && s.chunks.length === firsts[n] && s.errors.length === 1 &&
             s.data.length === firsts[n] + 2 && s.done, 'chunks, one error event, [DONE]', r.text);
    });
  }
}

await check('5 reset (stream): an RST after the first chunk reached the client: one error event, [DONE]', async () => {
  const st = await openStream(A.url, '/v1/chat/completions', chat('reset', 'hello', stream));
  expect(st.route === 'cloud:reset', 'cloud:reset', st.route);
  await st.read((t) => /"content":"The"/.test(t), 10000, 'the first chunk');
  await call(fault.url, '/_release');
  const s = parseStream(await st.read(() => false, 10000, 'the end of the stream'));
  expect(s.chunks.length === 1 && s.errors.length === 1 && s.data.length === 3 && s.done,
         'the chunk, one error event, [DONE]', st.text);
});

// the client leaves while the upstream holds the answer, or mid-stream:
// hearthd drops the upstream transfer, and goes on serving
await check('5 a client that leaves before the answer or mid-stream: the upstream connection is dropped', async () => {
  for (const s of [false, true]) {
    await call(fault.url, '/_reset');
    if (!s) {
      const ac = new AbortController();
      const pending = fetch(`${A.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(chat('gated', 'hello')), signal: ac.signal }).catch((e) => e);
      await waitFor('the request at the upstream', 10000,
                    async () => (await faultRecords()).length === 1);
      ac.abort();
      await pending;
    } else {
      const st = await openStream(A.url, '/v1/chat/completions', chat('gated', 'hello', stream));
      await st.read((t) => /"content":"The"/.test(t), 10000, 'the first chunk');
      await st.cancel();
    }
    await waitFor(`the upstream connection closed (${s ? 'stream' : 'non-stream'})`, 10000,
                  async () => (await faultRecords())[0].aborted);
    await call(fault.url, '/_release');
    const r = await call(A.url, '/v1/chat/completions', { body: chat('ok', 'hello') });
    expect(r.status === 200 && r.route === 'cloud:ok', 'then serves the next', r);
  }
});

// ---- 6. cool-down
await check('6 cooldown_failures = 2: the third request stays local, reason cooldown', async () => {
  await reload(A, confA, conf({ ...optsA, cooldownFailures: 2 }));
  await call(fault.url, '/_reset');
  for (let i = 0; i < 2; i++) {
    const r = await call(A.url, '/v1/chat/completions', { body: chat('cool', 'hello') });
    expectRoute(r, 'local', 'cloud-error-fallback');
  }
  const r = await call(A.url, '/v1/chat/completions', { body: chat('cool', 'hello') });
  expectRoute(r, 'local', 'cooldown');
  expectLocalAnswer(r, false);
  const recs = await faultRecords();
  expect(recs.length === 2, 'the fault server was asked twice, not three times',
         recs.map((x) => x.body.model));
  const h = await upstreamHealth(A, 'cool');
  expect(h && h.available === false && h.consecutive_failures === 2 && h.failed === 2,
         '/health: cool unavailable after 2 failures', h);
  expect((await upstreamHealth(A, 'ok')).available === true, '/health: ok still available',
         await upstreamHealth(A, 'ok'));
});

await check('6 after the cool-down one trial goes upstream; the others stay local until it ends', async () => {
  await reload(A, confA, conf({ ...optsA, cooldownFailures: 1, cooldown: 1 }));
  await call(fault.url, '/_reset');
  const ask = () => call(A.url, '/v1/chat/completions', { body: chat('g500', 'hello') });
  const upstreamGot = (n) => waitFor(`request ${n} at the upstream`, 10000,
                                     async () => (await faultRecords()).length === n);
  let pending = ask(); // fails: a cool-down of 1 s
  await upstreamGot(1);
  await call(fault.url, '/_release');
  expectRoute(await pending, 'local', 'cloud-error-fallback');
  await waitFor('g500 to cool down and come back', 10000,
                async () => (await upstreamHealth(A, 'g500')).available);
  pending = ask(); // the trial, held at the upstream
  await upstreamGot(2);
  expect((await upstreamHealth(A, 'g500')).available === false,
         '/health: unavailable while the trial runs', await upstreamHealth(A, 'g500'));
  for (const r of await within(20000, 'two more answers', Promise.all([ask(), ask()]))) {
    expectRoute(r, 'local', 'cooldown');
    expectLocalAnswer(r, false);
  }
  expect((await faultRecords()).length === 2, 'no second trial', (await faultRecords()).length);
  await call(fault.url, '/_release');
  expectRoute(await pending, 'local', 'cloud-error-fallback');
  const h = await upstreamHealth(A, 'g500');
  expect(h.failed === 2 && h.consecutive_failures === 2 && h.ok === 0, '/health: two failures', h);
});

// ---- 7. routing controls
await check('7 X-Hearth-Route: local with model "real" -> local', async () => {
  const r = await call(A.url, '/v1/chat/completions',
                       { body: chat('real', 'hello'), headers: { 'X-Hearth-Route': 'local' } });
  expectRoute(r, 'local', 'header');
  expectLocalAnswer(r, false);
});
await check('7 X-Hearth-Route: cloud, no model -> the first upstream', async () => {
  const r = await call(A.url, '/v1/chat/completions',
                       { body: chat(null, 'hello'), headers: { 'X-Hearth-Route': 'cloud' } });
  expectRoute(r, 'cloud:real', 'header');
  expect(r.status === 200 && r.json.model === CLOUD_ID, `answered by ${CLOUD_ID}`, r.text);
});
await check('7 a bad X-Hearth-Route -> 400', async () => {
  const r = await call(A.url, '/v1/chat/completions',
                       { body: chat('real', 'hello'), headers: { 'X-Hearth-Route': 'moon' } });
  expect(r.status === 400 && r.json && r.json.error, '400 with an error', r);
});
await check('7 an unknown model -> 404', async () => {
  const r = await call(A.url, '/v1/chat/completions', { body: chat('no-such-model', 'hello') });
  expect(r.status === 404 && r.json.error.code === 'model_not_found', '404 model_not_found', r);
});
await check('7 model "auto", an easy prompt -> local, reason score=', async () => {
  const r = await call(A.url, '/v1/chat/completions', { body: chat('auto', 'hi') });
  expectRoute(r, 'local', /^score=/);
  expectLocalAnswer(r, false);
});
await check('7 /v1/models: the local model, auto, the upstreams, no key', async () => {
  const r = await call(A.url, '/v1/models');
  const ids = r.json.data.map((m) => m.id);
  const want = [LOCAL_ID, 'auto', 'real', ...Object.keys(BEHAVIOURS), 'refused'];
  expect(JSON.stringify(ids) === JSON.stringify(want), `ids ${want}`, ids);
  const real = r.json.data.find((m) => m.id === 'real');
  expect(real.owned_by === 'cloud:real' && real.upstream_model === CLOUD_ID, 'real described', real);
  expect(!r.text.includes(KEY), 'no key', r.text);
});

// ---- 8. privacy
const secretPrompt = `Please write to ${EMAIL} about the meeting.`;
await check('8 action local: an e-mail address stays local, privacy:email', async () => {
  await call(fault.url, '/_reset');
  for (const s of [false, true]) {
    const r = await call(A.url, '/v1/chat/completions', { body: chat('echo', secretPrompt, s ? stream : {}) });
    expectRoute(r, 'local', 'privacy:email');
    expectLocalAnswer(r, s);
  }
  const recs = await faultRecords();
  expect(recs.length === 0, 'the fault server got nothing', recs.length);
});
// the same texts written with JSON escapes: no '@' or card on the wire,
// but the upstream would decode them
const escaped = (model, text, extra = {}) => JSON.stringify(chat(model, 'TEXT', extra))
  .replace('"TEXT"', `"${text}"`);
const escapedEmail = `Please write to ${EMAIL.replace('@', '\\u0040')} about it.`;
const escapedCard = 'My card is 4111\\u00201111\\u00201111\\u00201111, charge it.';
await check('8 action local: an address or a card written with JSON escapes stays local', async () => {
  await call(fault.url, '/_reset');
  for (const s of [false, true]) {
    let r = await call(A.url, '/v1/chat/completions', { body: escaped('echo', escapedEmail, s ? stream : {}) });
    expectRoute(r, 'local', 'privacy:email');
    expectLocalAnswer(r, s);
    r = await call(A.url, '/v1/chat/completions', { body: escaped('echo', escapedCard, s ? stream : {}) });
    expectRoute(r, 'local', 'privacy:card');
    expectLocalAnswer(r, s);
  }
  const r = await call(A.url, '/v1/completions', {
    body: `{"model":"echo","prompt":"${escapedEmail}","max_tokens":4}` });
  expectRoute(r, 'local', 'privacy:email');
  const recs = await faultRecords();
  expect(recs.length === 0, 'the fault server got nothing', recs);
});
await check('8 action reject (SIGHUP): 400 naming privacy:email', async () => {
  await reload(A, confA, conf({ ...optsA, cooldownFailures: 2, action: 'reject' }));
  const r = await call(A.url, '/v1/chat/completions', { body: chat('echo', secretPrompt) });
  expect(r.status === 400, 'status 400', r);
  expect(r.reason === 'privacy:email' && r.json.error.code === 'privacy' &&
         /email/.test(r.json.error.message), 'privacy:email named', { reason: r.reason, body: r.text });
  expect(!r.text.includes(EMAIL), 'the address is not echoed', r.text);
  const esc = await call(A.url, '/v1/chat/completions', { body: escaped('echo', escapedEmail) });
  expect(esc.status === 400 && esc.reason === 'privacy:email', 'escaped: 400 privacy:email',
         { reason: esc.reason, body: esc.text });
  expect((await faultRecords()).length === 0, 'the fault server got nothing', await faultRecords());
});
await check('8 action redact (SIGHUP): [EMAIL_1] upstream, the address back in the answer', async () => {
  await reload(A, confA, conf({ ...optsA, cooldownFailures: 2, action: 'redact' }));
  for (const s of [false, true]) {
    await call(fault.url, '/_reset');
    const r = await call(A.url, '/v1/chat/completions', { body: chat('echo', secretPrompt, s ? stream : {}) });
    expectRoute(r, 'cloud:echo');
    expect(r.status === 200, 'status 200', r);
    const recs = await faultRecords();
    expect(recs.length === 1, 'one request upstream', recs.length);
    const sent = recs[0].body.messages[0].content;
    expect(sent === 'Please write to [EMAIL_1] about the meeting.', 'the placeholder upstream', sent);
    expect(!JSON.stringify(recs).includes(EMAIL), 'never the address upstream', recs);
    const got = s ? parseStream(r.text).content : r.json.choices[0].message.content;
    expect(got === secretPrompt, `the address restored (${s ? 'stream' : 'non-stream'})`, r.text);
  }
});

await check('8 action redact: an address in tools (outside the messages) stays local, privacy:email, counted local', async () => {
  const n0 = (await faultRecords()).length; // section 9 reads the records before
  const tools = [{ type: 'function', function: {
    name: 'notify', description: `Sends a note to ${EMAIL}`,
    parameters: { type: 'object', properties: {} } } }];
  const before = (await call(A.url, '/health')).json.router;
  for (const s of [false, true]) {
    const r = await call(A.url, '/v1/chat/completions',
                         { body: chat('echo', 'Say hello.', { tools, ...(s ? stream : {}) }) });
    expectRoute(r, 'local', 'privacy:email');
    expect(r.status === 200, 'answered here', { status: r.status, body: r.text });
  }
  const after = (await call(A.url, '/health')).json.router;
  expect(after.local === before.local + 2 && after.cloud === before.cloud,
         '/health: two more local decisions, no cloud one', { before, after });
  const recs = await faultRecords();
  expect(recs.length === n0, 'the fault server got nothing more', recs.slice(n0));
});

// ---- 9. keys
await check('9 the echo upstream got Authorization: Bearer <key>; others none', async () => {
  await call(A.url, '/v1/chat/completions', { body: chat('ok', 'hello') });
  const recs = await faultRecords();
  const echo = recs.filter((x) => x.body.model === 'echo');
  expect(echo.length > 0 && echo.every((x) => x.headers.authorization === `Bearer ${KEY}`),
         'the key on echo', echo.map((x) => x.headers.authorization));
  const ok = recs.filter((x) => x.body.model === 'ok');
  expect(ok.length > 0 && ok.every((x) => !x.headers.authorization), 'no key on ok',
         ok.map((x) => x.headers.authorization));
  const h = await call(A.url, '/health');
  expect(!h.text.includes(KEY), 'no key in /health', h.text);
});

await check('9 a card, an IBAN, an sk- secret and a custom pattern: kept local, then redacted', async () => {
  for (const action of ['local', 'redact']) {
    await reload(A, confA, conf({ ...optsA, cooldownFailures: 2, action }));
    for (const [kind, value] of Object.entries(PRIVATE)) {
      await call(fault.url, '/_reset');
      const text = `Keep this: ${value} and answer.`;
      const r = await call(A.url, '/v1/chat/completions', { body: chat('echo', text) });
      const recs = await faultRecords();
      if (action === 'local') {
        expectRoute(r, 'local', `privacy:${kind}`);
        expectLocalAnswer(r, false);
        expect(recs.length === 0, 'the upstream got nothing', recs);
        continue;
      }
      expectRoute(r, 'cloud:echo', 'model');
      const sent = recs.length === 1 && recs[0].body.messages[0].content;
      expect(sent === `Keep this: [${kind.toUpperCase()}_1] and answer.`, 'the placeholder upstream',
             sent);
      expect(r.status === 200 && r.json.choices[0].message.content === text, 'restored', r.text);
    }
  }
});

// ---- 10. budget, across a restart
async function budgetRound() {
  const hour = Math.floor(Date.now() / 3600e3);
  for (let i = 0; i < 2; i++) {
    const r = await call(B.url, '/v1/chat/completions', { body: chat('ok', 'hello') });
    expectRoute(r, 'cloud:ok', 'model');
    expect(r.status === 200 && r.json.model === 'fault-ok', 'answered by the fault server', r.text);
  }
  let r = await call(B.url, '/v1/chat/completions', { body: chat('ok', 'hello') });
  expectRoute(r, 'local', 'budget:requests_per_hour');
  expectLocalAnswer(r, false);
  const code = await stopHearthd(B);
  expect(code === 0, 'B stops with 0', { code, log: readLog(B.log).slice(-2000) });
  B = await startHearthd(HEARTHD, 'B', [...common, '--config', confB, '--model', localModel],
                         B.log);
  daemons[2] = B;
  r = await call(B.url, '/v1/chat/completions', { body: chat('ok', 'hello') });
  const h = (await call(B.url, '/health')).json.router.budget;
  if (Math.floor(Date.now() / 3600e3) !== hour) return false; // a new hour: counts reset
  expectRoute(r, 'local', 'budget:requests_per_hour');
  expect(h.used.requests_hour === 2 && h.limits.requests_per_hour === 2,
         '/health: 2 of 2 requests used', h);
  return true;
}
await check('10 requests_per_hour = 2: the third is local, and stays so after a restart', async () => {
  if (!(await budgetRound())) { // crossed a clock hour: once more, from nothing
    budgetState = join(TMP, 'state-b2');
    writeFileSync(confB, conf({ state: budgetState, budget: 2, ups: ['ok'] }));
    await stopHearthd(B);
    B = await startHearthd(HEARTHD, 'B', [...common, '--config', confB, '--model', localModel], B.log);
    daemons[2] = B;
    expect(await budgetRound(), 'a round within one clock hour', 'two hour changes');
  }
  expect(readdirSync(budgetState).includes('router-budget.json'), 'the state file', readdirSync(budgetState));
});

// ---- 11. no local model
await check('11 no local model: "auto" -> cloud, no-local-model; "real" works', async () => {
  let r = await call(C.url, '/v1/chat/completions', { body: chat('auto', 'hi') });
  expectRoute(r, 'cloud:real', 'no-local-model');
  expect(r.status === 200 && r.json.model === CLOUD_ID, `answered by ${CLOUD_ID}`, r.text);
  r = await call(C.url, '/v1/chat/completions', { body: chat('real', 'hi', stream) });
  expectRoute(r, 'cloud:real', 'model');
  const s = parseStream(r.text);
  expect(s.done && s.content.length > 0 && s.errors.length === 0, 'a stream', r.text);
});

// ---- 14. the policy's other paths end to end, on E: one slot and no
// queue (--parallel 1, --max-queue 0), every engine step slowed to 50 ms
// so that a job is still running when the next request comes, fallback
// off, and a fake sysfs tree with a battery at 10 %, discharging
// (battery_min decides whether that is low).
{
  const bat = join(TMP, 'sysfs-e', 'class', 'power_supply', 'BAT0');
  mkdirSync(bat, { recursive: true });
  for (const [f, v] of [['type', 'Battery'], ['capacity', '10'], ['status', 'Discharging']])
    writeFileSync(join(bat, f), `${v}\n`);
}
const confE = join(TMP, 'e.conf');
const optsE = (o = {}) => ({
  state: join(TMP, 'state-e'), ups: ['ok', 'e500', 'refused'], sysfs: join(TMP, 'sysfs-e'),
  ...o, router: `fallback = no\nbattery_min = ${o.batteryMin ?? 0}\n` +
                (o.threshold !== undefined ? `threshold = ${o.threshold}\n` : ''),
});
writeFileSync(confE, conf(optsE()));
const E = await startHearthd(HEARTHD, 'E', ['--threads', '1', '--context', '512', '--parallel', '1',
  '--max-queue', '0', '--config', confE, '--model', localModel], join(TMP, 'hearthd-e.log'),
  { HEARTH_DEBUG_STEP_DELAY_MS: '50' });
daemons.push(E);
const auto = (content, extra = {}) => chat('auto', content, { max_tokens: 1, ...extra });
await check('14 context: a prompt longer than the local context -> cloud, context', async () => {
  const r = await call(E.url, '/v1/chat/completions',
                       { body: auto('Once upon a time there was a dog. '.repeat(120)) });
  expectRoute(r, 'cloud:ok', 'context');
  expect(r.status === 200 && r.json.model === 'fault-ok', 'answered upstream', r.text);
});
await check('14 unsupported: a schema the local side cannot enforce -> cloud, unsupported', async () => {
  const r = await call(E.url, '/v1/chat/completions', { body: auto('Say a word.', {
    response_format: { type: 'json_schema',
                       json_schema: { name: 'w', schema: { type: 'string', pattern: '^a' } } } }) });
  expectRoute(r, 'cloud:ok', 'unsupported');
  expect(r.status === 200 && r.json.model === 'fault-ok', 'answered upstream', r.text);
});
await check('14 fallback = no: a refused connection is a 502 upstream_error, a 500 passes through', async () => {
  let r = await call(E.url, '/v1/chat/completions', { body: chat('refused', 'hello') });
  expectRoute(r, 'cloud:refused', 'model');
  expect(r.status === 502 && r.json.error.code === 'upstream_error' &&
         /refused/.test(r.json.error.message), '502 upstream_error naming the upstream', r.text);
  const direct = await call(fault.url, '/v1/chat/completions', { body: chat('status-500', 'x') });
  r = await call(E.url, '/v1/chat/completions', { body: chat('e500', 'hello') });
  expectRoute(r, 'cloud:e500', 'model');
  expect(r.status === 500 && r.text === direct.text, "the upstream's 500 as sent, no local answer",
         { status: r.status, body: r.text });
});
await check('14 battery: discharging below battery_min turns a local score to the cloud', async () => {
  const prompt = 'Summarize the plot of a story about a dog and a cat who become friends.';
  let r = await call(E.url, '/v1/chat/completions', { body: auto(prompt) });
  expectRoute(r, 'local', /^score=/);
  const s0 = Number(r.reason.slice(6));
  // the battery adds its weight (2) to the logit: a threshold one logit
  // above the score without it is crossed with it
  const logit = Math.log(s0 / (1 - s0));
  const threshold = 1 / (1 + Math.exp(-(logit + 1)));
  expect(s0 > 0.02 && s0 < 0.9, 'a score in the middle', s0);
  await reload(E, confE, conf(optsE({ batteryMin: 20, threshold: threshold.toFixed(4) })));
  r = await call(E.url, '/v1/chat/completions', { body: auto(prompt) });
  expectRoute(r, 'cloud:ok', /^score=/);
  const s1 = Number(r.reason.slice(6));
  const want = 1 / (1 + Math.exp(-(logit + 2)));
  expect(s1 >= threshold && Math.abs(s1 - want) < 0.02, `score ${want.toFixed(2)} with the battery`,
         { s0, s1, threshold });
  await reload(E, confE, conf(optsE()));
  r = await call(E.url, '/v1/chat/completions', { body: auto(prompt) });
  expectRoute(r, 'local', `score=${s0.toFixed(2)}`);
});
await check('14 queue: the only slot busy, no queue -> cloud, queue; local once it is free', async () => {
  // a local stream that runs for a while (end of text banned), read up to
  // its first token: it holds the slot
  const long = await openStream(E.url, '/v1/chat/completions',
    chat(null, 'Once upon a time', { max_tokens: 400, logit_bias: { 2: -100 }, ...stream }),
    { 'X-Hearth-Route': 'local' });
  await long.read((t) => /"content":"[^"]/.test(t), 20000, 'the first token of the long job');
  const r = await call(E.url, '/v1/chat/completions', { body: auto('hi') });
  expectRoute(r, 'cloud:ok', 'queue');
  expect(r.status === 200 && r.json.model === 'fault-ok', 'answered upstream', r.text);
  expect(!long.ended, 'the long job was still running', long.text.length);
  await long.cancel(); // the client leaves: its slot is freed
  await waitFor('the slot to be free', 20000, async () =>
    (await call(E.url, '/health')).json.requests.running === 0);
  const again = await call(E.url, '/v1/chat/completions', { body: auto('hi') });
  expectRoute(again, 'local', /^score=/);
});
await check('14 tokens_per_hour: past the cap local, budget:tokens_per_hour', async () => {
  const hour = Math.floor(Date.now() / 3600e3);
  const used = (await call(E.url, '/health')).json.router.budget.used.tokens_hour;
  // the fault server reports 17 tokens an answer: two fit under used + 20
  await reload(E, confE, conf(optsE({ budgetTokens: used + 20 })));
  const routes = [];
  for (let i = 0; i < 3; i++) {
    const r = await call(E.url, '/v1/chat/completions', { body: chat('ok', 'hello') });
    routes.push(`${r.route} ${r.reason}`);
  }
  const h = (await call(E.url, '/health')).json.router.budget;
  if (Math.floor(Date.now() / 3600e3) !== hour) return; // a new hour: the counts started over
  expect(JSON.stringify(routes) === JSON.stringify(['cloud:ok model', 'cloud:ok model',
                                                    'local budget:tokens_per_hour']),
         'two answered upstream, then local', routes);
  expect(h.used.tokens_hour === used + 34 && h.limits.tokens_per_hour === used + 20,
         '/health: 34 more tokens used', h);
});

// ---- 13. Anthropic Messages and OpenAI Responses forwarded: the upstream
// speaks Chat Completions, the client gets its own dialect back (C has no
// local model: everything goes to "real", the cloud hearthd).
await check('13 Messages forwarded: whole, streamed, a forced tool call, an upstream 400', async () => {
  // Anthropic's clients name their own models: an unknown name takes the
  // default route (local here), so the header asks for auto
  const ant = new Anthropic({ baseURL: C.url, apiKey: 'unused', maxRetries: 0,
                              defaultHeaders: { 'X-Hearth-Route': 'auto' } });
  const bare = new Anthropic({ baseURL: C.url, apiKey: 'unused', maxRetries: 0 });
  let refused;
  try {
    await bare.messages.create({ model: 'claude-any-name', max_tokens: 4,
                                 messages: [{ role: 'user', content: 'x' }] });
  } catch (e) { refused = e; }
  expect(refused && refused.status === 503 && refused.error.error.type === 'overloaded_error',
         'an unknown model name takes the default route (local: none here)', refused && refused.error);
  const { data: m, response } = await ant.messages.create({
    model: 'claude-any-name', max_tokens: 8, messages: [{ role: 'user', content: 'Once upon a time' }],
  }).withResponse();
  expect(response.headers.get('x-hearth-route') === 'cloud:real', 'routed to the cloud',
         response.headers.get('x-hearth-route'));
  expect(m.type === 'message' && m.model === CLOUD_ID && m.content[0].type === 'text' &&
         m.content[0].text.length > 0 && m.stop_reason === 'max_tokens' && m.usage.output_tokens === 8,
         'a whole Messages answer from the cloud', m);
  const final = await ant.messages.stream({
    model: 'claude-any-name', max_tokens: 6, messages: [{ role: 'user', content: 'Once upon a time' }],
  }).finalMessage();
  expect(final.content[0].text.length > 0 && final.stop_reason === 'max_tokens' &&
         final.usage.output_tokens === 6, 'a streamed Messages answer', final);
  const params = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 } },
                   required: ['n'], additionalProperties: false };
  const t = await ant.messages.create({
    model: 'claude-any-name', max_tokens: 150, messages: [{ role: 'user', content: 'count' }],
    tools: [{ name: 'count', input_schema: params }], tool_choice: { type: 'any' },
  });
  const use = t.content.find((b) => b.type === 'tool_use');
  expect(t.stop_reason === 'tool_use' && use && use.name === 'count' && Number.isInteger(use.input.n) &&
         use.input.n >= 0 && use.input.n <= 99, 'a forced tool call through the cloud', t);
  let err;
  try {
    await ant.messages.create({
      model: 'claude-any-name', max_tokens: 8, messages: [{ role: 'user', content: 'x' }],
      output_format: { type: 'json_schema', schema: { type: 'string', pattern: '^a' } },
    });
  } catch (e) { err = e; }
  expect(err && err.status === 400 && err.error && err.error.type === 'error' &&
         /pattern/.test(err.error.error.message), "the upstream's 400 in Anthropic's shape",
         err && err.error);
});

await check('13 Responses forwarded: whole and streamed', async () => {
  const oa = new OpenAI({ baseURL: `${C.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const r = await oa.responses.create({ model: 'auto', input: 'Once upon a time', max_output_tokens: 8 });
  expect(r.object === 'response' && r.status === 'incomplete' && r.output_text.length > 0 &&
         r.usage.output_tokens === 8, 'a whole Response from the cloud', r);
  const stream = await oa.responses.create({ model: 'auto', input: 'Once upon a time',
                                            max_output_tokens: 6, stream: true });
  let text = '', last;
  for await (const ev of stream) {
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    last = ev.type;
  }
  expect(text.length > 0 && last === 'response.incomplete', 'a streamed Response', { text, last });
});

// ---- 12. the prompt's NLL: a held prefill, then local (the job goes on) or
// cloud (the job is cancelled, its prefilled cache kept). Weights that use
// the nll feature, with a bias that settles the score either way.
const shipped = readFileSync(join(here, '..', '..', 'conf', 'router-weights.txt'), 'utf8');
const nllWeights = (bias) => shipped.replace(/^nll .*$/m, 'nll 0.000001')
  .replace(/^bias .*$/m, `bias ${bias}`);
writeFileSync(join(TMP, 'w-local.txt'), nllWeights(-50));
writeFileSync(join(TMP, 'w-cloud.txt'), nllWeights(50));
const confD = (w) => conf({ state: join(TMP, 'state-d'), ups: ['real'] })
  .replace('default = local', `default = auto\nweights = ${join(TMP, w)}`);
writeFileSync(join(TMP, 'd1.conf'), confD('w-local.txt'));
writeFileSync(join(TMP, 'd2.conf'), confD('w-cloud.txt'));
const [D1, D2] = await Promise.all([
  startHearthd(HEARTHD, 'D1', [...common, '--config', join(TMP, 'd1.conf'), '--model', localModel],
               join(TMP, 'hearthd-d1.log')),
  startHearthd(HEARTHD, 'D2', [...common, '--config', join(TMP, 'd2.conf'), '--model', localModel],
               join(TMP, 'hearthd-d2.log')),
]);
daemons.push(D1, D2);
await check('12 NLL held prefill, scored local: answers, max_tokens 1 and 8, stream or not', async () => {
  for (const [i, extra] of [{ max_tokens: 1 }, { max_tokens: 8 }, { max_tokens: 1, ...stream },
                            { max_tokens: 8, ...stream }].entries()) {
    const r = await call(D1.url, '/v1/chat/completions',
                         { body: chat(null, `Once upon a time, story ${i}`, extra) });
    expectRoute(r, 'local', /^score=0\.00$/);
    expectLocalAnswer(r, !!extra.stream);
  }
  const h = (await call(D1.url, '/health')).json.router;
  expect(h.nll_rows > 0, 'nll_rows counted', h);
});
await check('12 NLL held prefill, scored cloud: forwarded, the prefilled cache kept', async () => {
  const text = 'Once upon a time there was a little dog who liked to run in the park';
  let r = await call(D2.url, '/v1/chat/completions', { body: chat(null, text) });
  expectRoute(r, 'cloud:real', /^score=1\.00$/);
  expect(r.status === 200 && r.json.model === CLOUD_ID, `answered by ${CLOUD_ID}`, r.text);
  r = await call(D2.url, '/v1/chat/completions',
                 { body: chat(null, text), headers: { 'X-Hearth-Route': 'local' } });
  expectRoute(r, 'local', 'header');
  expectLocalAnswer(r, false);
  const cached = r.json.usage.prompt_tokens_details.cached_tokens;
  expect(cached > 0, 'the held prefill left the prompt in the cache', r.json.usage);
});

// D3: D1's weights, and engine steps slowed to 1.5 s, so that a prompt of
// two prefill chunks (256 tokens each) is held for its NLL a while
const D3 = await startHearthd(HEARTHD, 'D3', [...common, '--config', join(TMP, 'd1.conf'),
  '--model', localModel], join(TMP, 'hearthd-d3.log'), { HEARTH_DEBUG_STEP_DELAY_MS: '1500' });
daemons.push(D3);
await check('12 a client that leaves during the held NLL prefill: cancelled, no decision, still serving', async () => {
  const lines = (re) => (readLog(D3.log).match(re) || []).length;
  const routes0 = lines(/ route: /g), gone0 = lines(/client went away, cancelling/g);
  const ac = new AbortController();
  const pending = fetch(`${D3.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: ac.signal,
    body: JSON.stringify(chat(null, 'Once upon a time there was a dog. '.repeat(30))) })
    .catch((e) => e);
  await waitFor('the held job to take its slot', 10000, async () =>
    (await call(D3.url, '/health')).json.requests.running === 1);
  expect(lines(/ route: /g) === routes0, 'no decision yet (the prefill is held)', lines(/ route: /g));
  ac.abort();
  await pending;
  await waitFor('the job to be cancelled', 20000, async () =>
    lines(/client went away, cancelling/g) === gone0 + 1 &&
    (await call(D3.url, '/health')).json.requests.running === 0);
  expect(lines(/ route: /g) === routes0, 'and never a decision', lines(/ route: /g));
  const r = await call(D3.url, '/v1/chat/completions', { body: chat(null, 'hi', { max_tokens: 1 }) });
  expectRoute(r, 'local', /^score=/);
  expectLocalAnswer(r, false);
});

// ---- the end: every daemon stops cleanly, and the logs keep no secret
const codes = [];
for (const d of daemons) codes.push([d.name, await stopHearthd(d)]);
fault.child.kill('SIGTERM');
await fault.child.exited;
await check('every hearthd exits 0 on SIGTERM, no sanitizer report', async () => {
  for (const [name, code] of codes) expect(code === 0, `hearthd ${name} exit 0`, code);
  for (const d of daemons) {
    const log = readLog(d.log);
    expect(!/Sanitizer|runtime error:/.test(log), `no sanitizer report in ${d.name}'s log`,
           log.slice(-3000));
  }
});
await check('9 no key, address, card, IBAN, secret or custom match in any hearthd log', async () => {
  for (const f of readdirSync(TMP).filter((x) => x.startsWith('hearthd-'))) {
    const log = readLog(join(TMP, f));
    expect(log.length > 0, `${f} has lines`, '');
    expect(!log.includes(KEY), `no key in ${f}`, 'the key');
    expect(!log.includes(EMAIL), `no address in ${f}`, 'the address');
    expect(!log.includes(EMAIL.split('@')[0]), `no local part in ${f}`, 'the local part');
    for (const [kind, value] of Object.entries(PRIVATE)) {
      expect(!log.includes(value) && !log.includes(value.replace(/ /g, '')),
             `no ${kind} in ${f}`, kind);
    }
  }
});
await check('9 one route decision per request in the log (a fallback adds one, an answer one)', async () => {
  const per = new Map();
  for (const f of readdirSync(TMP).filter((x) => x.startsWith('hearthd-'))) {
    // ids are unique within one run of a daemon (B's log holds two runs)
    let run = 0;
    for (const m of readLog(join(TMP, f)).matchAll(/ (?:route: (\S+): (.*)|listening on .*)$/gm)) {
      if (!m[1]) { run++; continue; }
      const k = `${f} ${run} ${m[1]}`;
      const e = per.get(k) || { decided: 0, fallback: 0, answered: 0 };
      if (/^cloud:\S+ answered /.test(m[2])) e.answered++;
      else if (m[2] === 'local (cloud-error-fallback)') e.fallback++;
      else if (/^(local|cloud:\S+|refused) \(/.test(m[2])) e.decided++;
      else throw new Error(`an unknown route line: ${m[0]}`);
      per.set(k, e);
    }
  }
  expect(per.size > 100, 'many requests logged', per.size);
  const bad = [...per].filter(([, e]) => e.decided !== 1 || e.fallback > 1 || e.answered > 1 ||
                                          (e.fallback && !e.answered));
  expect(bad.length === 0, 'exactly one decision each', bad.slice(0, 5));
});

console.log(`# ${Date.now() - t0} ms; logs in ${TMP}`);
if (st.xfailed) console.log(`# ${st.xfailed} expected failure(s), see XFAIL above`);
console.log(`${st.passed} passed, ${st.failed} failed`);
process.exit(st.failed ? 1 : 0);

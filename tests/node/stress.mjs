// stress.mjs - many clients against one hearthd, a share of them hanging up
// at random points (while sending the body, after the headers, in the
// middle of a stream, after a delay). Node's own http module, no packages.
//
// Checks: every request that stayed connected gets a complete answer (a
// stream ends with a finish_reason, the usage chunk and [DONE]; a plain
// answer parses, with a finish_reason and usage that agree with
// max_tokens); no 429 while clients <= slots + queue (the caller makes it
// so); no 5xx; and afterwards /health shows nothing running or queued
// (every slot and queue place came back), within a deadline.
//
//   HEARTH_URL=http://127.0.0.1:PORT node stress.mjs
//   env: STRESS_REQUESTS (2000), STRESS_CLIENTS (64), STRESS_HANGUP (0.3),
//        STRESS_SEED (1), STRESS_HANG_KIND (body|headers|chunk|delay: only
//        that kind of hang-up)
import http from 'node:http';

const base = new URL(process.env.HEARTH_URL ?? 'http://127.0.0.1:8080');
const total = Number(process.env.STRESS_REQUESTS ?? 2000);
const clients = Number(process.env.STRESS_CLIENTS ?? 64);
const hangShare = Number(process.env.STRESS_HANGUP ?? 0.3);
const onlyKind = process.env.STRESS_HANG_KIND; // one kind of hang-up only
let state = BigInt(process.env.STRESS_SEED ?? 1) * 0x9e3779b97f4a7c15n + 1n;

// xorshift64*: the same run for the same seed
function rnd() {
  state ^= state >> 12n; state ^= (state << 25n) & 0xffffffffffffffffn; state ^= state >> 27n;
  return Number(((state * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 11n) / 2 ** 53;
}
const pick = (n) => Math.floor(rnd() * n);
const WORDS = 'the a little cat dog sun ran saw big happy tree park ball Lily Tom was went'.split(' ');
const words = (n) => Array.from({ length: n }, () => WORDS[pick(WORDS.length)]).join(' ');

const tally = { complete: 0, hung: 0, status: {}, failures: [] };
const fail = (id, why) => { if (tally.failures.length < 20) tally.failures.push(`request ${id}: ${why}`); };

// Check a finished answer (the client stayed to the end).
function checkStream(id, spec, text) {
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
  if (events.at(-1) !== '[DONE]') return fail(id, 'stream does not end with [DONE]');
  let finish = null, usage = null;
  for (const e of events.slice(0, -1)) {
    let o;
    try { o = JSON.parse(e); } catch { return fail(id, `bad event ${e.slice(0, 80)}`); }
    if (o.error) return fail(id, `error event: ${o.error.message}`);
    if (o.usage) usage = o.usage;
    for (const c of o.choices ?? []) if (c.finish_reason) finish = c.finish_reason;
  }
  return checkEnd(id, spec, finish, usage);
}

function checkPlain(id, spec, text) {
  let o;
  try { o = JSON.parse(text); } catch { return fail(id, 'body is not JSON'); }
  const c = o.choices?.[0];
  const content = spec.chat ? c?.message?.content : c?.text;
  if (typeof content !== 'string') return fail(id, 'no text in the answer');
  return checkEnd(id, spec, c.finish_reason, o.usage);
}

function checkEnd(id, spec, finish, usage) {
  if (finish !== 'stop' && finish !== 'length') return fail(id, `finish_reason ${finish}`);
  if (!usage) return fail(id, 'no usage');
  const n = usage.completion_tokens;
  if (!(n >= 1 && n <= spec.max_tokens)) return fail(id, `completion_tokens ${n}`);
  if (finish === 'length' && n !== spec.max_tokens)
    return fail(id, `length after ${n} of ${spec.max_tokens} tokens`);
  tally.complete++;
  return true;
}

function once(id) {
  const spec = {
    chat: rnd() < 0.7, stream: rnd() < 0.6, max_tokens: 1 + pick(24),
    hang: rnd() < hangShare ? (onlyKind ?? ['body', 'headers', 'chunk', 'delay'][pick(4)]) : null,
    delay: pick(40), chunks: 1 + pick(6),
  };
  const text = words(1 + pick(60));
  const body = JSON.stringify({
    ...(spec.chat ? { messages: [{ role: 'user', content: text }] } : { prompt: text }),
    max_tokens: spec.max_tokens, stream: spec.stream, seed: id, temperature: 0.8,
    ...(spec.stream ? { stream_options: { include_usage: true } } : {}),
  });
  const path = spec.chat ? '/v1/chat/completions' : '/v1/completions';
  return new Promise((resolve) => {
    let done = false;
    const end = (hung) => { if (!done) { done = true; if (hung) tally.hung++; resolve(); } };
    const req = http.request({
      host: base.hostname, port: base.port, path, method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const hangUp = () => { req.destroy(); end(true); };
    req.setTimeout(120000, () => { fail(id, 'no answer in 120 s'); req.destroy(); end(false); });
    req.on('error', (e) => { if (!done) { fail(id, `connection error ${e.code ?? e.message}`); end(false); } });
    req.on('response', (res) => {
      tally.status[res.statusCode] = (tally.status[res.statusCode] ?? 0) + 1;
      if (spec.hang === 'headers') return hangUp();
      let data = '', chunks = 0;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        data += d;
        if (spec.hang === 'chunk' && ++chunks >= spec.chunks) hangUp();
      });
      res.on('end', () => {
        if (done) return;
        if (res.statusCode !== 200) fail(id, `status ${res.statusCode}: ${data.slice(0, 200)}`);
        else if (spec.stream) checkStream(id, spec, data);
        else checkPlain(id, spec, data);
        end(false);
      });
      res.on('error', () => end(true));
    });
    if (spec.hang === 'body') {
      req.write(body.slice(0, Math.max(1, body.length >> 1)));
      setTimeout(hangUp, spec.delay);
      return;
    }
    req.end(body);
    if (spec.hang === 'delay') setTimeout(hangUp, spec.delay);
  });
}

async function health() {
  return new Promise((resolve, reject) => {
    http.get({ host: base.hostname, port: base.port, path: '/health', agent: false }, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => { try { resolve(JSON.parse(d)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}

let next = 0;
const t0 = Date.now();
await Promise.all(Array.from({ length: clients }, async () => {
  while (next < total) await once(next++);
}));
const secs = (Date.now() - t0) / 1000;

// Every slot and queue place must come back once the hung-up requests are
// noticed: poll /health under a deadline.
let h, idle = false;
for (const deadline = Date.now() + 20000; Date.now() < deadline;) {
  h = await health();
  if (h.requests.running === 0 && h.requests.queued === 0) { idle = true; break; }
  await new Promise((r) => setTimeout(r, 50));
}
console.log(`${total} requests from ${clients} clients in ${secs.toFixed(1)} s: ` +
  `${tally.complete} complete, ${tally.hung} hung up; statuses ${JSON.stringify(tally.status)}`);
const bad = [];
if (tally.failures.length) bad.push(...tally.failures);
for (const s of Object.keys(tally.status)) if (s !== '200') bad.push(`${tally.status[s]} answers with status ${s}`);
if (tally.complete + tally.hung !== total) bad.push(`${total - tally.complete - tally.hung} requests neither completed nor hung up`);
if (!idle) bad.push(`/health still shows work after the run: ${JSON.stringify(h?.requests)}`);
if (bad.length) {
  console.log('FAIL\n  ' + bad.join('\n  '));
  process.exit(1);
}
console.log('PASS');

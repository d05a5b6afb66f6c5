// router_util.mjs - processes, HTTP and checks for tests/node/router.mjs
// (and chat_page.mjs): start and stop hearthd and the fault upstream with
// their logs in files, poll with deadlines, read server-sent events, count
// named checks.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const children = new Set();
process.on('exit', () => {
  for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

// Poll fn until it returns a truthy value; throw after ms.
export async function waitFor(what, ms, fn) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

// promise, or a rejection naming `what` after ms.
export function within(ms, what, promise) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// A streamed POST read as it arrives: {status, route, reason, read(until,
// ms)} where read() collects text until until(text) holds (or the stream
// ends) and gives the text so far; cancel() drops the rest.
export async function openStream(base, path, body, headers = {}) {
  const res = await fetch(base + path, {
    method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', ...headers },
  });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let text = '', ended = false;
  return {
    status: res.status, route: res.headers.get('x-hearth-route'),
    reason: res.headers.get('x-hearth-route-reason'),
    get text() { return text; },
    get ended() { return ended; },
    async read(until, ms, what) {
      while (!ended && !until(text)) {
        const { value, done } = await within(ms, what, reader.read());
        if (done) ended = true;
        else text += dec.decode(value, { stream: true });
      }
      return text;
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

export function readLog(path) {
  try { return readFileSync(path, 'utf8'); } catch { return ''; }
}

function track(child) {
  children.add(child);
  child.exited = new Promise((resolve) => child.on('exit', (code, sig) => {
    children.delete(child);
    resolve({ code, sig });
  }));
  return child;
}

// A port that nothing listens on (bound, then closed).
export async function deadPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

// The fault upstream; args: more of its options (--tls CERT KEY: https).
export async function startFault(script, logPath, args = []) {
  const fd = openSync(logPath, 'w');
  const child = track(spawn(process.execPath, [script, '0', ...args],
                            { stdio: ['ignore', fd, fd] }));
  closeSync(fd);
  const port = await waitFor('the fault upstream to listen', 10000, () => {
    const m = /^PORT (\d+)/m.exec(readLog(logPath));
    if (!m && child.exitCode !== null) throw new Error(`fault upstream exited:\n${readLog(logPath)}`);
    return m && Number(m[1]);
  });
  const scheme = args.includes('--tls') ? 'https' : 'http';
  return { child, port, log: logPath, url: `${scheme}://127.0.0.1:${port}` };
}

// hearthd with ARGS on a free port of `host` (loopback unless a test needs
// another address; it is reached at 127.0.0.1), stdout and stderr to logPath.
export async function startHearthd(bin, name, args, logPath, env = {}, host = '127.0.0.1') {
  const fd = openSync(logPath, 'a');
  const child = track(spawn(bin, [...args, '--host', host, '--port', '0'],
                            { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } }));
  closeSync(fd);
  const from = readLog(logPath).length;
  const port = await waitFor(`hearthd ${name} to listen`, 60000, () => {
    const m = /listening on \S+:(\d+)/.exec(readLog(logPath).slice(from));
    if (!m && child.exitCode !== null)
      throw new Error(`hearthd ${name} exited with ${child.exitCode}:\n${readLog(logPath)}`);
    return m && Number(m[1]);
  });
  return { name, child, port, log: logPath, url: `http://127.0.0.1:${port}` };
}

// SIGTERM and wait; the exit status (0 expected: a sanitizer report or a
// leak makes it non-zero).
export async function stopHearthd(d) {
  if (d.child.exitCode !== null) return d.child.exitCode;
  d.child.kill('SIGTERM');
  const timer = setTimeout(() => d.child.kill('SIGKILL'), 30000);
  const { code, sig } = await d.child.exited;
  clearTimeout(timer);
  return sig ? `signal ${sig}` : code;
}

// SIGHUP after writing the configuration; waits for the reload's log line.
export async function reload(d, confPath, text) {
  writeFileSync(confPath, text);
  const before = (readLog(d.log).match(/config: reload/g) || []).length;
  d.child.kill('SIGHUP');
  await waitFor(`hearthd ${d.name} to reload`, 10000, () => {
    const lines = readLog(d.log).split('\n').filter((l) => /config: reload/.test(l));
    if (lines.length <= before) return false;
    const last = lines[lines.length - 1];
    if (/reload failed/.test(last)) throw new Error(last);
    return true;
  });
}

// One HTTP exchange; the body read whole (as text, and as JSON when it is).
export async function call(base, path, { method, body, headers = {} } = {}) {
  const init = { method: method || (body === undefined ? 'GET' : 'POST'), headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return {
    status: res.status, text, json,
    route: res.headers.get('x-hearth-route'), reason: res.headers.get('x-hearth-route-reason'),
    type: res.headers.get('content-type'),
  };
}

// The data of each server-sent event of a stream, in order.
export function sseData(text) {
  const out = [];
  for (const ev of text.split(/\r?\n\r?\n/)) {
    const data = ev.split(/\r?\n/).filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''));
    if (data.length) out.push(data.join('\n'));
  }
  return out;
}

// The chunks of a stream: {done, chunks (parsed), errors (the error events)}.
export function parseStream(text) {
  const data = sseData(text);
  const done = data.length > 0 && data[data.length - 1] === '[DONE]';
  const chunks = [];
  const errors = [];
  for (const d of data) {
    if (d === '[DONE]') continue;
    const j = JSON.parse(d);
    (j.error ? errors : chunks).push(j);
  }
  const content = chunks.map((c) => (c.choices || []).map((x) =>
    (x.delta && x.delta.content) || x.text || '').join('')).join('');
  return { data, done, chunks, errors, content };
}

// Named checks: check() runs one, xfail() one known to fail (a TODO).
export function checker() {
  const st = { passed: 0, failed: 0, xfailed: 0 };
  const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  async function run(name, fn, expectFail) {
    try {
      await fn();
      if (expectFail) {
        st.failed++;
        console.log(`FAIL ${name}: passed, but is marked as an expected failure (${expectFail})`);
      } else {
        st.passed++;
        console.log(`ok   ${name}`);
      }
    } catch (e) {
      if (expectFail) {
        st.xfailed++;
        console.log(`XFAIL ${name} (${expectFail}): ${e && e.message ? e.message : e}`);
      } else {
        st.failed++;
        console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
      }
    }
  }
  return {
    st,
    check: (name, fn) => run(name, fn, null),
    xfail: (name, todo, fn) => run(name, fn, todo),
    // assert with what was received
    expect(cond, what, got) {
      if (!cond) throw new Error(`${what}; got: ${show(got)}`.slice(0, 3000));
    },
  };
}

// fault_upstream.mjs - an OpenAI-compatible server that misbehaves on
// purpose, for tests/test_router.sh (node built-ins only).
//
//   node fault_upstream.mjs [PORT] [--tls CERT KEY]
//                                      (0 or none: pick a free port)
//
// Listens on 127.0.0.1 and prints "PORT <n>" as its first line of output.
// With --tls it serves HTTPS with that certificate and key (PEM files), the
// same behaviours (the raw cuts are written through the TLS socket).
// POST /v1/chat/completions and /v1/completions behave as the body's
// "model" says (hearthd rewrites it to the [upstream.NAME] model value):
//   ok               a normal answer; streamed: fixed chunks 20 ms apart,
//                    the usage chunk when stream_options.include_usage
//   echo             the last user message (or the prompt) as the answer
//   status-500, status-401, status-429, status-400
//                    that status with an OpenAI-shaped error body
//   slow-headers     nothing for 10 s
//   drop-mid-stream  200, two content chunks, then the socket is destroyed
//   malformed        200, one good chunk, then "data: {not json"
//   never-ends       200, one chunk, then nothing (the connection stays)
//   empty-200        a 200 head without a body, then the connection closes
//   gated            the "ok" stream (or answer), held: the role and first
//                    content chunk, then nothing until GET /_release, then
//                    the rest (a whole answer: nothing until released)
//   gated-500        nothing until GET /_release, then a 500
// Cut short at one point each (the connection closed, or reset: RST):
//   cut-status       inside the status line
//   cut-headers      inside the headers
//   cut-event        200, one event, then half of the next
//   short-body       200 with a Content-Length, then fewer bytes (whole
//                    answers; streamed: the same with SSE)
//   reset            200 and half the body, then RST; streamed: 200, one
//                    event, then RST at GET /_release (data unread when an
//                    RST arrives is lost: the test lets hearthd read first)
//   anything else    404 with an error body
// Every request is recorded: GET /_requests gives [{method, url, headers,
// body, aborted}] (body parsed when JSON; aborted: the connection closed
// before the answer was complete, and not by a cut behaviour), GET /_reset clears them. GET /_release
// lets every request held at a gate go on ({released: n}); GET /_held
// counts them ({held: n}). GET
// /_expected?kind=chat|completion&usage=0|1 gives the exact bytes of the
// "ok" stream, for byte-for-byte comparisons.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const CREATED = 1700000000;
const OK_TEXT = 'The fault server says hello.';
const OK_PIECES = ['The', ' fault', ' server', ' says', ' hello', '.'];
const OK_USAGE = { prompt_tokens: 11, completion_tokens: 6, total_tokens: 17 };
const STATUS = {
  'status-500': [500, 'server_error', 'internal_error', 'the fault server failed on purpose'],
  'status-401': [401, 'invalid_request_error', 'invalid_api_key', 'Incorrect API key provided'],
  'status-429': [429, 'rate_limit_error', 'rate_limit_exceeded', 'Rate limit reached'],
  'status-400': [400, 'invalid_request_error', 'bad_request', 'The fault server refuses this'],
};

const records = [];
const gates = []; // the resolve functions of requests held until /_release
const gate = () => new Promise((resolve) => gates.push(resolve));
const sockets = new Set();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function errorBody(message, type, code) {
  return JSON.stringify({ error: { message, type, param: null, code } });
}

function sse(obj) {
  return `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
}

// One streamed chunk of the kind asked for.
function chunk(kind, model, text, finish, first) {
  if (kind === 'completion')
    return {
      id: 'cmpl-fault', object: 'text_completion', created: CREATED, model,
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    };
  const delta = first ? { role: 'assistant', content: '' } : text === null ? {} : { content: text };
  return {
    id: 'chatcmpl-fault', object: 'chat.completion.chunk', created: CREATED, model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  };
}

function usageChunk(kind, model) {
  return {
    id: kind === 'completion' ? 'cmpl-fault' : 'chatcmpl-fault',
    object: kind === 'completion' ? 'text_completion' : 'chat.completion.chunk',
    created: CREATED, model, choices: [], usage: OK_USAGE,
  };
}

// The events of a whole stream answering with `pieces`.
function streamEvents(kind, model, pieces, usage) {
  const ev = [];
  if (kind === 'chat') ev.push(sse(chunk(kind, model, '', null, true)));
  for (const p of pieces) ev.push(sse(chunk(kind, model, p, null, false)));
  ev.push(sse(chunk(kind, model, kind === 'chat' ? null : '', 'stop', false)));
  if (usage) ev.push(sse(usageChunk(kind, model)));
  ev.push('data: [DONE]\n\n');
  return ev;
}

// The first n content chunks of the "ok" answer (the broken streams).
function contentEvents(kind, n) {
  return OK_PIECES.slice(0, n).map((p) => sse(chunk(kind, 'fault-ok', p, null, false)));
}

function wholeAnswer(kind, model, text) {
  if (kind === 'completion')
    return {
      id: 'cmpl-fault', object: 'text_completion', created: CREATED, model,
      choices: [{ index: 0, text, logprobs: null, finish_reason: 'stop' }], usage: OK_USAGE,
    };
  return {
    id: 'chatcmpl-fault', object: 'chat.completion', created: CREATED, model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null,
                finish_reason: 'stop' }],
    usage: OK_USAGE,
  };
}

// The text of the last user message (string or text parts), or the prompt.
function lastUserText(kind, body) {
  if (kind === 'completion')
    return Array.isArray(body.prompt) ? body.prompt.join('') : String(body.prompt ?? '');
  const users = (body.messages || []).filter((m) => m.role === 'user');
  const c = users.length ? users[users.length - 1].content : '';
  if (typeof c === 'string') return c;
  return (c || []).filter((p) => p.type === 'text').map((p) => p.text).join('');
}

// Cut a text into pieces of 5 bytes or so (a placeholder then spans chunks).
function cut(text) {
  const out = [];
  for (let i = 0; i < text.length; i += 5) out.push(text.slice(i, i + 5));
  return out.length ? out : [''];
}

async function writeEvents(res, events, delay) {
  for (const e of events) {
    if (res.destroyed) return;
    res.write(e);
    if (delay) await sleep(delay);
  }
}

function startSse(res) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  res.flushHeaders();
}

async function generate(req, res, kind, body) {
  const model = typeof body.model === 'string' ? body.model : '';
  const stream = body.stream === true;
  const usage = !!(body.stream_options && body.stream_options.include_usage);
  const reply = (status, text) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(text);
  };
  // the cut behaviours close the connection themselves: not an abort
  res.cut = /^(cut-|short-body|reset|drop-mid-stream|empty-200)/.test(model);
  if (STATUS[model]) {
    const [st, type, code, msg] = STATUS[model];
    return reply(st, errorBody(msg, type, code));
  }
  switch (model) {
  case 'ok':
  case 'echo': {
    const text = model === 'ok' ? OK_TEXT : lastUserText(kind, body);
    if (!stream) return reply(200, JSON.stringify(wholeAnswer(kind, 'fault-ok', text)));
    startSse(res);
    const pieces = model === 'ok' ? OK_PIECES : cut(text);
    await writeEvents(res, streamEvents(kind, 'fault-ok', pieces, usage), 20);
    return res.end();
  }
  case 'gated': {
    if (!stream) {
      await gate();
      if (!res.destroyed) reply(200, JSON.stringify(wholeAnswer(kind, 'fault-ok', OK_TEXT)));
      return;
    }
    startSse(res);
    const ev = streamEvents(kind, 'fault-ok', OK_PIECES, usage);
    const first = kind === 'chat' ? 2 : 1; // the role chunk and "The"
    await writeEvents(res, ev.slice(0, first), 0);
    await gate();
    await writeEvents(res, ev.slice(first), 0);
    return res.end();
  }
  case 'gated-500': {
    await gate();
    const [st, type, code, msg] = STATUS['status-500'];
    if (!res.destroyed) reply(st, errorBody(msg, type, code));
    return;
  }
  case 'cut-status':
    return req.socket.end('HTTP/1.1 20');
  case 'cut-headers':
    return req.socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Con');
  case 'cut-event': {
    const ev = contentEvents(kind, 2);
    return req.socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n' +
                          `Connection: close\r\n\r\n${ev[0]}${ev[1].slice(0, 20)}`);
  }
  case 'short-body': {
    const text = stream ? contentEvents(kind, 2).join('')
      : JSON.stringify(wholeAnswer(kind, 'fault-ok', OK_TEXT));
    const type = stream ? 'text/event-stream' : 'application/json';
    return req.socket.end(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\n` +
                          `Content-Length: ${text.length + 40}\r\n\r\n${text}`);
  }
  case 'reset': {
    const text = stream ? contentEvents(kind, 1)[0]
      : JSON.stringify(wholeAnswer(kind, 'fault-ok', OK_TEXT)).slice(0, 30);
    const type = stream ? 'text/event-stream' : 'application/json';
    req.socket.write(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\n` +
                     `Transfer-Encoding: chunked\r\n\r\n${text.length.toString(16)}\r\n${text}\r\n`);
    if (stream) await gate();
    else await sleep(20);
    return req.socket.resetAndDestroy();
  }
  case 'slow-headers':
    await sleep(10000);
    if (!res.destroyed) reply(200, JSON.stringify(wholeAnswer(kind, 'fault-ok', OK_TEXT)));
    return;
  case 'drop-mid-stream':
    startSse(res);
    await writeEvents(res, contentEvents(kind, 2), 20);
    await sleep(20);
    return res.socket && res.socket.destroy();
  case 'malformed':
    startSse(res);
    await writeEvents(res, contentEvents(kind, 1), 20);
    res.write('data: {not json\n\n');
    return; // the connection stays open: hearthd must end it
  case 'never-ends':
    startSse(res);
    await writeEvents(res, contentEvents(kind, 1), 20);
    return; // nothing more, ever
  case 'empty-200': {
    // a head and no body, read-until-close: written raw so that Node adds
    // no chunked framing
    const type = stream ? 'text/event-stream' : 'application/json';
    req.socket.end(`HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nConnection: close\r\n\r\n`);
    return;
  }
  default:
    return reply(404, errorBody(`The model '${model}' does not exist`,
                                'invalid_request_error', 'model_not_found'));
  }
}

const args = process.argv.slice(2);
const tlsAt = args.indexOf('--tls');
const tls = tlsAt < 0 ? null : args.splice(tlsAt, 3).slice(1);
if (tls && tls.length !== 2) {
  console.error('fault_upstream: --tls needs CERT and KEY');
  process.exit(2);
}
const handler = (req, res) => {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/_requests') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify(records));
    }
    if (req.method === 'GET' && url.pathname === '/_reset') {
      records.length = 0;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end('{"ok":true}');
    }
    if (req.method === 'GET' && (url.pathname === '/_release' || url.pathname === '/_held')) {
      const n = gates.length;
      if (url.pathname === '/_release') for (const go of gates.splice(0)) go();
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify(url.pathname === '/_release' ? { released: n } : { held: n }));
    }
    if (req.method === 'GET' && url.pathname === '/_expected') {
      const kind = url.searchParams.get('kind') === 'completion' ? 'completion' : 'chat';
      const usage = url.searchParams.get('usage') === '1';
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return res.end(streamEvents(kind, 'fault-ok', OK_PIECES, usage).join(''));
    }
    let body = raw;
    try { body = JSON.parse(raw); } catch { /* recorded as text */ }
    const rec = { method: req.method, url: req.url, headers: req.headers, body, aborted: false };
    records.push(rec);
    res.on('close', () => { if (!res.writableFinished && !res.cut) rec.aborted = true; });
    const kind = url.pathname === '/v1/chat/completions' ? 'chat'
      : url.pathname === '/v1/completions' ? 'completion' : null;
    if (req.method !== 'POST' || !kind) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      return res.end(errorBody(`No route ${req.method} ${url.pathname}`,
                               'invalid_request_error', 'not_found'));
    }
    if (typeof body !== 'object' || body === null) {
      res.writeHead(400, { 'Content-Type': 'application/json' });
      return res.end(errorBody('The body is not JSON', 'invalid_request_error', 'invalid_json'));
    }
    generate(req, res, kind, body).catch((e) => {
      console.error(`fault_upstream: ${e && e.stack ? e.stack : e}`);
      if (!res.headersSent) { res.writeHead(500); res.end(); } else res.destroy();
    });
  });
};
const server = tls
  ? https.createServer({ cert: readFileSync(tls[0]), key: readFileSync(tls[1]) }, handler)
  : http.createServer(handler);
// a failed handshake (the client refused the certificate) is the client's
// business: note it and go on
server.on('tlsClientError', (e) => console.log(`fault_upstream: tls: ${e.message}`));
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

function stop() {
  for (const s of sockets) s.destroy();
  server.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(Number(args[0] || 0), '127.0.0.1', () => {
  console.log(`PORT ${server.address().port}`);
});

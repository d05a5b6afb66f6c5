// chat_page.mjs - the chat page (docs/chat-page.md) end to end
// (tests/test_chat_page.sh runs it): hearthds with the page off, on a
// non-loopback address, and on with stories260K and an API key; the page's
// files over HTTP; then the page in headless Chromium (Debian's, driven by
// playwright-core): the key, streaming, stop, reload, Markdown that carries
// HTML, an error event, the keyboard, a narrow window, CSP and console.
//
// Environment: HEARTHD (the binary), HEARTH_TEST_DATA (the shared data),
// CHAT_TMP (scratch: logs, the browser profile), CHAT_SHOT (the screenshot,
// in the build tree).
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { call, checker, readLog, startHearthd, stopHearthd, waitFor } from './router_util.mjs';

const HEARTHD = process.env.HEARTHD;
const DATA = process.env.HEARTH_TEST_DATA;
const TMP = process.env.CHAT_TMP;
const SHOT = process.env.CHAT_SHOT;
const KEY = `chat-page-key-${process.pid}`;
const MODEL = 'stories260K';
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const { st, check, expect } = checker();
const T = 30000; // the deadline of one wait in the browser

const [off, wide, hd] = await Promise.all([
  startHearthd(HEARTHD, 'off', ['--webui', 'no'], join(TMP, 'hearthd-off.log')),
  // auto, on an address that is not loopback: the page stays off (the key
  // keeps the API shut for the moment it listens on every interface)
  startHearthd(HEARTHD, 'wide', ['--api-key', KEY], join(TMP, 'hearthd-wide.log'), {}, '0.0.0.0'),
  // each engine step sleeps, so that a stream lasts long enough to watch
  // it grow and to stop it
  startHearthd(HEARTHD, 'page', ['--model', join(DATA, 'models', `${MODEL}.gguf`), '--api-key', KEY,
                                 '--threads', '1', '--parallel', '2'],
               join(TMP, 'hearthd-page.log'), { HEARTH_DEBUG_STEP_DELAY_MS: '40' }),
]);

// ---- 1. [server] webui

for (const [d, why] of [[off, 'webui = no'], [wide, 'auto on 0.0.0.0']]) {
  await check(`${why}: GET / and the page's files are 404 in the API's error shape`, async () => {
    for (const path of ['/', '/chat.js', '/chat.css', '/favicon.svg']) {
      const r = await call(d.url, path);
      expect(r.status === 404, `${path}: status 404`, r.status);
      expect(r.json && r.json.error && r.json.error.code === 'not_found' &&
             r.json.error.type === 'invalid_request_error' &&
             r.json.error.message === `Invalid URL (GET ${path})`, `${path}: the error object`, r.text);
    }
    const h = await call(d.url, '/', { method: 'HEAD' });
    expect(h.status === 404, 'HEAD /: 404', h.status);
    expect(/chat page: off/.test(readLog(d.log)), 'the start line says the page is off', readLog(d.log));
  });
}

// ---- 2. the files over HTTP

await check('GET /: the page, its CSP, nosniff, no-cache and an ETag; no key needed', async () => {
  expect(/chat page: on/.test(readLog(hd.log)), 'the start line says the page is on', readLog(hd.log));
  const r = await fetch(`${hd.url}/`);
  const html = await r.text();
  expect(r.status === 200, 'status 200', r.status);
  expect(r.headers.get('content-type') === 'text/html; charset=utf-8', 'Content-Type', r.headers.get('content-type'));
  expect(r.headers.get('content-security-policy') === CSP, 'the CSP', r.headers.get('content-security-policy'));
  expect(r.headers.get('x-content-type-options') === 'nosniff', 'nosniff', r.headers.get('x-content-type-options'));
  expect(r.headers.get('cache-control') === 'no-cache', 'Cache-Control', r.headers.get('cache-control'));
  expect(/^"[0-9a-f]{16}"$/.test(r.headers.get('etag') || ''), 'a strong ETag', r.headers.get('etag'));
  expect(html.includes('<script src="/chat.js" defer></script>'), 'the script is a file', html);
  expect(!/<script(?![^>]*\bsrc=)/i.test(html) && !/<style/i.test(html) && !/\sstyle=/i.test(html) &&
         !/\son[a-z]+=/i.test(html), 'no inline script, style or handler', html);
  expect(!/(https?:)?\/\/[a-z]/i.test(html.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '')),
         'nothing loaded from elsewhere', html);
});

await check('HEAD /, a 304 for If-None-Match, the script, style and icon with their types', async () => {
  const g = await fetch(`${hd.url}/`);
  const len = (await g.arrayBuffer()).byteLength;
  const etag = g.headers.get('etag');
  const h = await fetch(`${hd.url}/`, { method: 'HEAD' });
  expect(h.status === 200 && Number(h.headers.get('content-length')) === len,
         'HEAD: 200 with the length of GET', [h.status, h.headers.get('content-length'), len]);
  expect((await h.arrayBuffer()).byteLength === 0, 'HEAD: no body', null);
  const nm = await fetch(`${hd.url}/`, { headers: { 'If-None-Match': `"0000000000000000", W/${etag}` } });
  expect(nm.status === 304 && nm.headers.get('etag') === etag, '304 with the ETag', nm.status);
  expect((await nm.arrayBuffer()).byteLength === 0, '304: no body', null);
  const other = await fetch(`${hd.url}/`, { headers: { 'If-None-Match': '"0000000000000000"' } });
  expect(other.status === 200, 'another ETag: 200', other.status);
  await other.arrayBuffer();
  const types = { '/chat.js': 'text/javascript; charset=utf-8', '/chat.css': 'text/css; charset=utf-8',
                  '/favicon.svg': 'image/svg+xml' };
  for (const [path, type] of Object.entries(types)) {
    const r = await fetch(`${hd.url}${path}`);
    const body = await r.text();
    expect(r.status === 200 && r.headers.get('content-type') === type, `${path}: ${type}`,
           [r.status, r.headers.get('content-type')]);
    expect(r.headers.get('content-security-policy') === CSP &&
           r.headers.get('x-content-type-options') === 'nosniff', `${path}: CSP and nosniff`, null);
    expect(body.length > 100, `${path}: a body`, body.length);
    if (path === '/chat.js')
      expect(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new Function|setTimeout\(\s*['"`]/
        .test(body), 'chat.js never parses text as HTML or code', null);
  }
  const api = await call(hd.url, '/v1/models');
  expect(api.status === 401, 'the API still wants the key', api.status);
  const post = await call(hd.url, '/', { method: 'POST', body: {}, headers: { Authorization: `Bearer ${KEY}` } });
  expect(post.status === 405, 'POST /: 405', post.status);
});

// ---- 3. the page in Chromium

const profile = mkdtempSync(join(TMP, 'profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
  viewport: { width: 1100, height: 780 },
});
// Content-Security-Policy violations, as the page itself would see them
await context.addInitScript(() => {
  window.cspViolations = [];
  document.addEventListener('securitypolicyviolation',
    (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
});
const page = context.pages()[0] || await context.newPage();
const dialogs = [];
page.on('dialog', (d) => {
  dialogs.push(d.message());
  d.dismiss().catch(() => {});
});
let consoleErrors = [];
page.on('console', (m) => {
  if (m.type() === 'error' || m.type() === 'warning')
    consoleErrors.push(m.text());
});
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));

const answers = page.locator('#log .msg.assistant');
const sendState = () => page.getAttribute('#send', 'data-state');
const idle = (ms = 60000) => page.waitForFunction(
  () => document.querySelector('#send').dataset.state === 'send', null, { timeout: ms });
// Type into the message box and press Enter.
async function say(text) {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

let pageResponse;
await check('the page loads; without the key it says clearly that one is wanted', async () => {
  pageResponse = await page.goto(`${hd.url}/`);
  expect(pageResponse.status() === 200, 'status 200', pageResponse.status());
  expect(pageResponse.headers()['content-security-policy'] === CSP, 'the CSP header',
         pageResponse.headers()['content-security-policy']);
  await page.waitForFunction(() => {
    const s = document.querySelector('#status');
    return s.classList.contains('error') && /API key/.test(s.textContent);
  }, null, { timeout: T });
  expect(await page.evaluate(() => document.activeElement.id) === 'message',
         'the message box has the focus', await page.evaluate(() => document.activeElement.id));
});

await check('a message without the key: the 401 shows in the conversation', async () => {
  await say('Hello');
  await idle();
  const err = await answers.last().locator('.error-text').textContent();
  expect(/API key/.test(err) && /401/.test(err), 'the answer says 401 and API key', err);
  // the browser reports each refused request on its console; nothing else
  const unexpected = consoleErrors.filter((t) => !/status of 401/.test(t));
  expect(unexpected.length === 0, 'only the 401s on the console', consoleErrors);
  consoleErrors = [];
});

await check('with the key typed in, the model menu fills from /v1/models', async () => {
  await page.fill('#api-key', KEY);
  await page.press('#api-key', 'Enter');
  await page.locator(`#model option[value="model:${MODEL}"]`).waitFor({ state: 'attached', timeout: T });
  await page.waitForFunction((m) => document.querySelector('#status').textContent === `Ready: ${m}`,
                             MODEL, { timeout: T });
  expect(await page.inputValue('#model') === `model:${MODEL}`, 'the local model is chosen',
         await page.inputValue('#model'));
  const routes = await page.$$eval('#model option', (os) => os.map((o) => o.value));
  for (const r of ['route:auto', 'route:local', 'route:cloud'])
    expect(routes.includes(r), `the menu offers ${r}`, routes);
});

await check('Shift+Enter is a new line, Enter sends; the answer streams in, then route and speed',
  async () => {
    await page.click('#new');
    await page.fill('#max-tokens', '40');
    await page.fill('#message', 'Once upon a time');
    await page.press('#message', 'Shift+Enter');
    await page.locator('#message').pressSequentially('there was a cat');
    expect(await page.inputValue('#message') === 'Once upon a time\nthere was a cat',
           'a newline in the box', await page.inputValue('#message'));
    expect(await page.locator('#log .msg').count() === 0, 'nothing sent yet', null);
    await page.press('#message', 'Enter');
    // the answer's text, sampled every frame while the stream runs
    const seen = await page.waitForFunction(() => {
      const all = document.querySelectorAll('#log .msg.assistant .body');
      const t = all.length ? all[all.length - 1].textContent : '';
      window.seenTexts = window.seenTexts || [];
      if (t && !window.seenTexts.includes(t))
        window.seenTexts.push(t);
      const running = document.querySelector('#send').dataset.state === 'stop';
      return window.seenTexts.length >= 3 || !running ? window.seenTexts.slice() : false;
    }, null, { timeout: T, polling: 'raf' }).then((h) => h.jsonValue());
    expect(seen.length >= 2, 'the text grew through 2 or more values before the end', seen);
    await idle();
    const user = await page.locator('#log .msg.user .body').last().textContent();
    expect(user === 'Once upon a time\nthere was a cat', 'the user text, with its newline', user);
    const text = await answers.last().locator('.body').textContent();
    expect(text.length > seen[0].length, 'the answer went on after the first values', [text, seen]);
    const meta = await answers.last().locator('.meta').textContent();
    expect(/^route local \([a-z-]+\) · stories260K · \d+ tokens · [\d.,]+ tokens\/s · first token [\d,]+ ms$/
      .test(meta), 'route, model, usage tokens, tokens/s and time to first token', meta);
  });

await check('Stop ends the stream; hearthd cancels the request', async () => {
  const cancelledBefore = (readLog(hd.log).match(/POST \/v1\/chat\/completions .*connection ended early/g) || []).length;
  await page.fill('#max-tokens', '1500');
  await say('Tell me a long story');
  await page.waitForFunction(() => {
    const all = document.querySelectorAll('#log .msg.assistant .body');
    return all.length && all[all.length - 1].textContent.length > 0;
  }, null, { timeout: T });
  expect(await sendState() === 'stop', 'the button is Stop while it streams', await sendState());
  expect(await page.textContent('#send') === 'Stop', 'labelled Stop', await page.textContent('#send'));
  await page.click('#send');
  await idle(5000);
  expect(await page.textContent('#send') === 'Send', 'the button is Send again', null);
  const meta = await answers.last().locator('.meta').textContent();
  expect(/stopped/.test(meta) && /≈\d+ tokens/.test(meta), 'the answer says stopped, tokens counted', meta);
  const text = await answers.last().locator('.body').textContent();
  await waitFor('hearthd to log the request ended early', 10000, () =>
    (readLog(hd.log).match(/POST \/v1\/chat\/completions .*connection ended early/g) || []).length >
      cancelledBefore);
  await waitFor('no request running on hearthd', 10000, async () => {
    const h = await call(hd.url, '/health');
    return h.json.requests.running === 0 && h.json.requests.queued === 0;
  });
  const later = await answers.last().locator('.body').textContent();
  expect(later === text && text.length > 0, 'the text stayed as it was when stopped', [text, later]);
  expect(await page.locator('#status').textContent() === 'Stopped.', 'the status says Stopped.', null);
});

await check('after a reload the conversations, the key and the answers are kept', async () => {
  await page.reload();
  await page.locator(`#model option[value="model:${MODEL}"]`).waitFor({ state: 'attached', timeout: T });
  const titles = await page.$$eval('#conversations .open', (bs) => bs.map((b) => b.textContent));
  expect(titles.length === 2 && titles[0] === 'Once upon a time' && titles[1] === 'Hello',
         'both conversations, newest first', titles);
  expect(await page.getAttribute('#conversations .open >> nth=0', 'aria-current') === 'true',
         'the last one is current', null);
  const users = await page.$$eval('#log .msg.user .body', (es) => es.map((e) => e.textContent));
  expect(users.length === 2 && users[1] === 'Tell me a long story', 'its two questions', users);
  const metas = await page.$$eval('#log .msg.assistant .meta', (es) => es.map((e) => e.textContent));
  expect(metas.length === 2 && /stopped/.test(metas[1]) && /tokens\/s/.test(metas[0]),
         'its answers with their figures', metas);
  expect(await page.inputValue('#api-key') === KEY, 'the key field is kept', null);
  expect(await page.inputValue('#max-tokens') === '1500', 'the max tokens setting is kept', null);
  await page.click('#conversations .open >> nth=1');
  const hello = await page.$$eval('#log .msg.user .body', (es) => es.map((e) => e.textContent));
  expect(hello.length === 1 && hello[0] === 'Hello', 'the first conversation opens', hello);
});

// A canned stream in place of hearthd's: the model "answers" with HTML in
// Markdown and in a code block, cut mid-tag across events, with a comment,
// CRLF line ends and an event whose data spans two lines.
function sse(events) {
  return events.map((e) => (e.startsWith(':') ? `${e}\n\n` : `data: ${e}\n\n`)).join('');
}
const chunk = (content) => JSON.stringify({
  id: 'chatcmpl-canned', object: 'chat.completion.chunk', created: 1, model: 'canned',
  choices: [{ index: 0, delta: { content }, finish_reason: null }],
});
const EVIL = '<img src=x onerror=alert(1)>';
const answerMd = 'Here is **bold** and *soft* text with <img src=x onerror=alert(2)> inline, ' +
  'and `<b>code</b>`.\n\n<script>alert(3)</script>\n\n- item <iframe src="javascript:alert(4)"></iframe>\n' +
  '- [bad link](javascript:alert(5)) and [good link](https://example.com/a)\n\n' +
  '```html\n<script>alert(6)</script>\n<img src=x onerror=alert(7)>\n```\n';
const cut = [0, 20, 45, 52, 90, 118, 140, 175, 240, 262, answerMd.length];
const cannedBody =
  sse([chunk('')]) + ': ping\n\n' +
  cut.slice(1).map((end, k) => sse([chunk(answerMd.slice(cut[k], end))])).join('')
    .replace(/\n\n$/, '\r\n\r\n') +
  `data: {"id":"chatcmpl-canned","object":"chat.completion.chunk","created":1,"model":"canned",\n` +
  'data: "choices":[],"usage":{"prompt_tokens":5,"completion_tokens":11,"total_tokens":16}}\n\n' +
  'data: [DONE]\n\n';

await check('model output with HTML and user text with HTML show as text; nothing runs', async () => {
  await page.route('**/v1/chat/completions', (route) => route.fulfill({
    status: 200, body: cannedBody,
    headers: { 'Content-Type': 'text/event-stream', 'X-Hearth-Route': 'cloud:canned',
               'X-Hearth-Route-Reason': 'test' },
  }));
  await page.click('#new');
  await say(EVIL);
  await idle();
  const a = answers.last();
  await page.waitForFunction(() => /alert\(7\)/.test(
    document.querySelector('#log .msg.assistant:last-child .body').textContent), null, { timeout: T });
  const userText = await page.locator('#log .msg.user .body').last().textContent();
  expect(userText === EVIL, 'the user text, literally', userText);
  const body = await a.locator('.body').textContent();
  for (const s of ['<img src=x onerror=alert(2)>', '<script>alert(3)</script>',
                   '<iframe src="javascript:alert(4)"></iframe>', 'bad link (javascript:alert(5))'])
    expect(body.includes(s), `the answer shows ${s} literally`, body);
  const code = await a.locator('pre code').textContent();
  expect(code === '<script>alert(6)</script>\n<img src=x onerror=alert(7)>', 'the code block', code);
  expect(await a.locator('pre code').getAttribute('class') === 'language-html', 'its language', null);
  expect(await a.locator('strong').textContent() === 'bold' && await a.locator('em').textContent() === 'soft' &&
         await a.locator('p code').textContent() === '<b>code</b>', 'Markdown rendered', null);
  expect(await a.locator('li').count() === 2, 'a list of two items', null);
  const links = await a.locator('a').evaluateAll((as) => as.map((x) => [x.href, x.rel, x.textContent]));
  expect(links.length === 1 && links[0][0] === 'https://example.com/a' && /noopener/.test(links[0][1]) &&
         links[0][2] === 'good link', 'only the https link is a link, with rel=noopener', links);
  const bad = await page.evaluate(() => [
    document.querySelectorAll('img, iframe, object, embed, frame, svg, math, style, link[rel="import"]').length,
    [...document.scripts].map((s) => s.src),
    [...document.querySelectorAll('#log *')].flatMap((e) => [...e.attributes].map((x) => x.name))
      .filter((n) => n.startsWith('on')),
  ]);
  expect(bad[0] === 0, 'no image, frame or style element', bad);
  expect(bad[1].length === 1 && bad[1][0] === `${hd.url}/chat.js`, 'no script but chat.js', bad);
  expect(bad[2].length === 0, 'no event handler attribute', bad);
  const meta = await a.locator('.meta').textContent();
  expect(/^route cloud:canned \(test\) · canned · 11 tokens/.test(meta), 'the route headers and usage', meta);
  await page.unroute('**/v1/chat/completions');
});

await check('an error event in the stream ends the answer with its message', async () => {
  await page.route('**/v1/chat/completions', (route) => route.fulfill({
    status: 200, headers: { 'Content-Type': 'text/event-stream' },
    body: sse([chunk('Partial answer'), JSON.stringify({ error: { message: 'upstream exploded',
      type: 'server_error' } }), '[DONE]']),
  }));
  await say('And now?');
  await idle();
  const a = answers.last();
  const got = [await a.locator('.body').textContent(), await a.locator('.error-text').textContent(),
               await page.locator('#status.error').textContent()];
  expect(got[0] === 'Partial answer', 'the text before the error', got);
  expect(got[1] === 'Error: upstream exploded', 'the error', got);
  expect(got[2] === 'upstream exploded', 'the status', got);
  await page.unroute('**/v1/chat/completions');
});

await check('a router choice goes as X-Hearth-Route with the local model as model', async () => {
  const sent = [];
  await page.route('**/v1/chat/completions', (route) => {
    sent.push({ headers: route.request().headers(), body: route.request().postDataJSON() });
    return route.continue();
  });
  await page.click('#new');
  await page.selectOption('#model', 'route:auto');
  await page.fill('#max-tokens', '8');
  await say('Tell me about a dog');
  await idle();
  await page.unroute('**/v1/chat/completions');
  expect(sent.length === 1, 'one request', sent.length);
  const { headers, body } = sent[0];
  expect(headers['x-hearth-route'] === 'auto' && headers.authorization === `Bearer ${KEY}`,
         'the route and the key in the headers', headers);
  expect(body.model === MODEL && body.stream === true && body.stream_options.include_usage === true &&
         body.max_tokens === 8 && body.messages.length === 1 &&
         body.messages[0].role === 'user' && body.messages[0].content === 'Tell me about a dog',
         'the body', body);
  const meta = await answers.last().locator('.meta').textContent();
  expect(/^route local \(no-upstream\) · stories260K · [1-8] tokens/.test(meta),
         'hearthd has no upstream: local, and says why', meta);
});

await check('keyboard: labelled controls, focus order, a live conversation region', async () => {
  const unlabelled = await page.$$eval('input, select, textarea',
    (es) => es.filter((e) => !e.labels || e.labels.length === 0).map((e) => e.id));
  expect(unlabelled.length === 0, 'every control has a label', unlabelled);
  await page.focus('#model');
  const order = ['model'];
  for (let k = 0; k < 4; k++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.className));
  }
  expect(order.join(' ') === 'model max-tokens api-key new open', 'settings, then conversations', order);
  await page.focus('#message');
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => document.activeElement.id) === 'send', 'the box, then Send', null);
  expect(await page.getAttribute('#log', 'aria-live') === 'polite' &&
         await page.getAttribute('#log', 'aria-busy') === 'false', 'aria-live on the conversation', null);
});

await check('a screenshot; no console error, no CSP violation, no dialog', async () => {
  await page.locator('#conversations .open').filter({ hasText: /^Once upon a time$/ }).click();
  await page.screenshot({ path: SHOT });
  const csp = await page.evaluate(() => window.cspViolations);
  expect(csp.length === 0, 'no CSP violation', csp);
  expect(consoleErrors.length === 0, 'no console error or warning', consoleErrors);
  expect(dialogs.length === 0, 'no dialog', dialogs);
});

await check('a narrow window: one column, nothing wider than the window', async () => {
  await page.setViewportSize({ width: 360, height: 740 });
  const box = await page.evaluate(() => {
    const nav = document.querySelector('nav').getBoundingClientRect();
    const main = document.querySelector('main').getBoundingClientRect();
    const box = document.querySelector('#message').getBoundingClientRect();
    return { scroll: document.documentElement.scrollWidth, navBottom: nav.bottom, mainTop: main.top,
             mainWidth: main.width, boxBottom: box.bottom, height: window.innerHeight };
  });
  expect(box.scroll <= 360, 'no horizontal scrolling', box);
  expect(box.boxBottom <= box.height, 'the message box in view, the conversation scrolls', box);
  expect(box.navBottom <= box.mainTop + 1 && box.mainWidth >= 340, 'the list above the conversation', box);
  await page.screenshot({ path: SHOT.replace(/\.png$/, '_narrow.png') });
});

await check('deleting a conversation removes it for good', async () => {
  await page.setViewportSize({ width: 1100, height: 780 });
  await page.getByRole('button', { name: 'Delete conversation: Hello', exact: true }).click();
  await page.reload();
  await page.locator(`#model option[value="model:${MODEL}"]`).waitFor({ state: 'attached', timeout: T });
  const titles = await page.$$eval('#conversations .open', (bs) => bs.map((b) => b.textContent));
  expect(titles.length === 3 && !titles.includes('Hello'), 'the three others are left', titles);
  expect(await page.inputValue('#model') === 'route:auto', 'the model choice is kept',
         await page.inputValue('#model'));
});

await context.close();
for (const d of [off, wide, hd]) {
  const code = await stopHearthd(d);
  await check(`hearthd ${d.name} exits cleanly`, async () => expect(code === 0, 'exit 0', code));
}
console.log(`${st.passed} passed, ${st.failed} failed`);
process.exit(st.failed ? 1 : 0);

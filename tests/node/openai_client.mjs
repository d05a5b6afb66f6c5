// Drives a running hearthd with the official OpenAI Node client and checks
// the parsed objects. HEARTH_URL is the daemon's base URL (http://host:port),
// HEARTH_TEST_DATA the shared test data folder.
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const base = process.env.HEARTH_URL;
const data = process.env.HEARTH_TEST_DATA;
const ref = JSON.parse(readFileSync(`${data}/reference/stories260K.json`, 'utf8'));
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

const chatBody = {
  model: 'stories260K',
  messages: [{ role: 'user', content: 'Tell me a story about a cat.' }],
  max_tokens: 24,
  temperature: 0.7,
  seed: 42,
};

await check('models.list', async () => {
  const page = await client.models.list();
  assert.equal(page.data.length, 1);
  assert.equal(page.data[0].id, 'stories260K');
  assert.equal(page.data[0].object, 'model');
});

let nonStreamText;
await check('chat.completions.create (non-stream)', async () => {
  const r = await client.chat.completions.create(chatBody);
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.ok(r.usage.completion_tokens <= 24);
  nonStreamText = r.choices[0].message.content;
});

await check('chat.completions.create (stream, include_usage) equals non-stream', async () => {
  const stream = await client.chat.completions.create({
    ...chatBody, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let first = true;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) {
      assert.equal(chunk.choices.length, 0);
      usage = chunk.usage;
      continue;
    }
    const c = chunk.choices[0];
    if (first) assert.equal(c.delta.role, 'assistant');
    first = false;
    if (c.delta.content) text += c.delta.content;
    if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(finish === 'stop' || finish === 'length');
  assert.ok(usage && usage.completion_tokens > 0);
  assert.equal(text, nonStreamText);
});

await check('completions.create matches the reference greedy text', async () => {
  const c = ref.cases[0];
  const r = await client.completions.create({
    model: 'stories260K', prompt: c.prompt, max_tokens: c.greedy_ids.length, temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, c.greedy_text);
  assert.equal(r.usage.prompt_tokens, c.prompt_ids.length);
});

await check('completions.create (stream)', async () => {
  const c = ref.cases[1];
  const stream = await client.completions.create({
    model: 'stories260K', prompt: c.prompt, max_tokens: c.greedy_ids.length,
    temperature: 0, stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, c.greedy_text);
});

await check('unknown model is a NotFoundError', async () => {
  await assert.rejects(
    client.chat.completions.create({ ...chatBody, model: 'no-such-model' }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
});

await check('bad parameter is a BadRequestError naming it', async () => {
  await assert.rejects(
    client.chat.completions.create({ ...chatBody, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
});

await check('ten requests in a row on the client\'s kept-alive connections', async () => {
  for (let i = 0; i < 10; i++) {
    const stream = i % 2 === 1;
    const r = await client.chat.completions.create({ ...chatBody, max_tokens: 4, stream });
    if (stream) for await (const _ of r) { /* drain */ }
    else assert.equal(r.choices.length, 1);
  }
});

if (failures) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all OpenAI client checks passed');

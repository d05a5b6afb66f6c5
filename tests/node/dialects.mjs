// The Anthropic Messages API and the OpenAI Responses API, driven by the
// official clients (@anthropic-ai/sdk, openai) against a running hearthd.
// HEARTH_URL is its base URL, HEARTH_KEY its API key.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const base = process.env.HEARTH_URL;
const key = process.env.HEARTH_KEY;
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });

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

const story = [{ role: 'user', content: 'Tell me a story about a cat.' }];

// ---- Anthropic Messages
let msgText;
await check('messages.create (non-stream)', async () => {
  const m = await anthropic.messages.create({
    model: 'stories260K', max_tokens: 16, temperature: 0, messages: story,
    system: 'You tell short stories.',
  });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.match(m.id, /^msg_/);
  assert.equal(m.content[0].type, 'text');
  assert.ok(m.content[0].text.length > 0);
  assert.equal(m.stop_reason, 'max_tokens');
  assert.ok(m.usage.input_tokens > 0);
  assert.equal(m.usage.output_tokens, 16);
  msgText = m.content[0].text;
});

await check('messages.stream: events in order, the same text as non-stream', async () => {
  const stream = anthropic.messages.stream({
    model: 'stories260K', max_tokens: 16, temperature: 0, messages: story,
    system: 'You tell short stories.',
  });
  const types = [];
  let text = '';
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'content_block_delta') text += ev.delta.text;
  }
  const final = await stream.finalMessage();
  assert.equal(types[0], 'message_start');
  assert.equal(types[1], 'content_block_start');
  assert.ok(types.includes('content_block_delta'));
  assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
  assert.equal(text, msgText);
  assert.equal(final.content[0].text, msgText);
  assert.equal(final.stop_reason, 'max_tokens');
  assert.equal(final.usage.output_tokens, 16);
});

await check('messages: stop_sequences gives stop_reason stop_sequence', async () => {
  const m = await anthropic.messages.create({
    model: 'stories260K', max_tokens: 64, temperature: 0, messages: story,
    stop_sequences: [msgText.trim().split(/\s+/)[1] || 'the'],
  });
  if (m.stop_reason === 'stop_sequence')
    assert.ok(typeof m.stop_sequence === 'string' && m.stop_sequence.length > 0);
  else
    assert.ok(['end_turn', 'max_tokens'].includes(m.stop_reason), m.stop_reason);
});

await check('messages.countTokens', async () => {
  const r = await anthropic.messages.countTokens({ model: 'stories260K', messages: story });
  assert.ok(Number.isInteger(r.input_tokens) && r.input_tokens > 0, JSON.stringify(r));
});

await check('messages: an error in Anthropic\'s shape (no max_tokens)', async () => {
  const res = await fetch(`${base}/v1/messages`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ model: 'stories260K', messages: story }),
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.type, 'error');
  assert.equal(body.error.type, 'invalid_request_error');
  assert.match(body.error.message, /max_tokens/);
});

await check('messages: a wrong x-api-key is a 401 the client raises', async () => {
  const bad = new Anthropic({ baseURL: base, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(
    bad.messages.create({ model: 'stories260K', max_tokens: 4, messages: story }),
    (e) => e.status === 401);
});

// ---- OpenAI Responses
let respText;
await check('responses.create (non-stream): output_text', async () => {
  const r = await openai.responses.create({
    model: 'stories260K', input: 'Tell me a story about a cat.', instructions: 'Be brief.',
    max_output_tokens: 16, temperature: 0,
  });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.ok(['completed', 'incomplete'].includes(r.status));
  assert.ok(r.output_text.length > 0);
  assert.equal(r.usage.output_tokens, 16);
  assert.equal(r.usage.total_tokens, r.usage.input_tokens + 16);
  respText = r.output_text;
});

await check('responses.create (stream): the event sequence, the same text', async () => {
  const stream = await openai.responses.create({
    model: 'stories260K', input: 'Tell me a story about a cat.', instructions: 'Be brief.',
    max_output_tokens: 16, temperature: 0, stream: true,
  });
  const types = [];
  let text = '';
  let last = -1;
  let done;
  for await (const ev of stream) {
    types.push(ev.type);
    assert.ok(ev.sequence_number > last, 'sequence numbers increase');
    last = ev.sequence_number;
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed' || ev.type === 'response.incomplete') done = ev.response;
  }
  assert.equal(types[0], 'response.created');
  assert.ok(types.includes('response.output_item.added'));
  assert.ok(types.includes('response.output_text.delta'));
  assert.ok(types.includes('response.output_text.done'));
  assert.equal(text, respText);
  assert.ok(done, 'a final response event');
  assert.equal(done.output[0].content[0].text, respText);
});

await check('responses: previous_response_id is a 400 the client raises', async () => {
  await assert.rejects(
    openai.responses.create({ model: 'stories260K', input: 'hi', previous_response_id: 'resp_x' }),
    (e) => e.status === 400 && /previous_response_id/.test(e.message));
});

await check('models.retrieve', async () => {
  const m = await openai.models.retrieve('stories260K');
  assert.equal(m.id, 'stories260K');
  await assert.rejects(openai.models.retrieve('nope'), (e) => e.status === 404);
});

// ---- structured output (chat): the schema constrains every token
const personSchema = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    n: { type: 'integer' },
    mood: { enum: ['happy', 'sad'] },
    tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 2 },
  },
  required: ['ok', 'n', 'mood'],
  additionalProperties: false,
};
await check('response_format json_schema: the answer parses and fits the schema', async () => {
  for (const seed of [1, 2, 3]) {
    const r = await openai.chat.completions.create({
      model: 'stories260K', messages: story, max_tokens: 120, seed,
      response_format: { type: 'json_schema', json_schema: { name: 'p', strict: true, schema: personSchema } },
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'stop', c.message.content);
    const v = JSON.parse(c.message.content);
    assert.equal(typeof v.ok, 'boolean');
    assert.ok(Number.isInteger(v.n));
    assert.ok(['happy', 'sad'].includes(v.mood));
    for (const k of Object.keys(v)) assert.ok(k in personSchema.properties, k);
    if (v.tags) assert.ok(v.tags.length <= 2 && v.tags.every((t) => ['a', 'b'].includes(t)));
  }
});

await check('response_format json_schema, streamed: the deltas join into valid JSON', async () => {
  const stream = await openai.chat.completions.create({
    model: 'stories260K', messages: story, max_tokens: 120, seed: 7, stream: true,
    response_format: { type: 'json_schema', json_schema: { name: 'p', schema: personSchema } },
  });
  let text = '';
  let finish;
  for await (const ch of stream) {
    text += ch.choices[0]?.delta?.content || '';
    finish = ch.choices[0]?.finish_reason || finish;
  }
  assert.equal(finish, 'stop');
  assert.ok(['happy', 'sad'].includes(JSON.parse(text).mood), text);
});

await check('response_format json_object: only JSON (an object prefix when cut)', async () => {
  const r = await openai.chat.completions.create({
    model: 'stories260K', messages: story, max_tokens: 40, seed: 3,
    response_format: { type: 'json_object' },
  });
  const t = r.choices[0].message.content;
  assert.equal(t[0], '{', t);
  if (r.choices[0].finish_reason === 'stop') assert.equal(typeof JSON.parse(t), 'object');
});

await check('response_format with an unsupported keyword: a 400 naming it', async () => {
  await assert.rejects(
    openai.chat.completions.create({
      model: 'stories260K', messages: story, max_tokens: 8,
      response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'string', pattern: 'a+' } } },
    }),
    (e) => e.status === 400 && /pattern/.test(e.message) && e.param === 'response_format');
});

console.log(failures ? `${failures} failed` : 'all passed');
process.exit(failures ? 1 : 0);

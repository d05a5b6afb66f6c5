// Tool calling and structured output as real clients use them, against a
// hearthd serving a random-weights model (synth-qwen2-45m): the constraint
// alone must make every forced call and every structured answer valid.
// Clients: the official openai and @anthropic-ai/sdk packages, the Vercel AI
// SDK (ai + @ai-sdk/openai-compatible, and @ai-sdk/openai, which calls
// /v1/responses) and LangChain (@langchain/openai).
// HEARTH_URL: the base URL; HEARTH_TEMPLATE: a name for the log lines;
// HEARTH_TOOL_FORMAT: the template's call format (docs/tools.md).
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { generateText, generateObject, Output, tool, jsonSchema } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { z } from 'zod';
import assert from 'node:assert/strict';

const base = process.env.HEARTH_URL;
const tmpl = process.env.HEARTH_TEMPLATE || '';
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: 'none', maxRetries: 0 });
const model = 'synth-qwen2-45m-Q4_K_M';
const format = process.env.HEARTH_TOOL_FORMAT || 'hermes';
const mistral = format.startsWith('mistral');

let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   [${tmpl}] ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL [${tmpl}] ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

// The tools, with strict schemas so that a weak model cannot wander.
const weatherParams = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 24 },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
  },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const countParams = {
  type: 'object',
  properties: { n: { type: 'integer' }, exact: { type: 'boolean' } },
  required: ['n', 'exact'],
  additionalProperties: false,
};
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather now', parameters: weatherParams } },
  { type: 'function', function: { name: 'count', description: 'Count things', parameters: countParams } },
];
const ask = [{ role: 'user', content: 'What is the weather in Oslo?' }];
// The [ARGS] format writes the name outside the JSON: a forced call must
// name its function, so `required` is asked with one tool there.
const forced = format === 'mistral-args' ? [tools[1]] : tools;

// A value against one of the schemas above (enough of JSON Schema for them).
function validates(schema, v) {
  if (schema.enum) return schema.enum.includes(v);
  switch (schema.type) {
    case 'string': return typeof v === 'string' && (!schema.maxLength || [...v].length <= schema.maxLength);
    case 'integer': return Number.isInteger(v);
    case 'boolean': return typeof v === 'boolean';
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
      for (const r of schema.required || []) if (!(r in v)) return false;
      for (const [k, x] of Object.entries(v)) {
        const p = schema.properties && schema.properties[k];
        if (!p) { if (schema.additionalProperties === false) return false; continue; }
        if (!validates(p, x)) return false;
      }
      return true;
    }
    case 'array': return Array.isArray(v) && v.every((x) => validates(schema.items, x));
  }
  return true;
}

function assertCall(call, name) {
  assert.equal(call.type, 'function');
  assert.match(call.id, mistral ? /^[A-Za-z0-9]{9}$/ : /^call_[A-Za-z0-9]{24}$/);
  const params = call.function.name === 'count' ? countParams : weatherParams;
  if (name) assert.equal(call.function.name, name);
  const args = JSON.parse(call.function.arguments);
  assert.ok(validates(params, args), `arguments ${call.function.arguments} do not match ${call.function.name}`);
}

// ---- OpenAI Chat Completions
let firstCall;
await check('chat: tool_choice required gives a valid call', async () => {
  const r = await openai.chat.completions.create({ model, messages: ask, tools: forced, tool_choice: 'required', max_tokens: 120 });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  assert.equal(c.message.content, null);
  assert.equal(c.message.tool_calls.length, 1);
  assertCall(c.message.tool_calls[0]);
  firstCall = c.message.tool_calls[0];
});

await check('chat: a named function gives a call of it', async () => {
  for (const name of ['count', 'get_weather']) {
    const r = await openai.chat.completions.create({
      model, messages: ask, tools, max_tokens: 120,
      tool_choice: { type: 'function', function: { name } },
    });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assertCall(r.choices[0].message.tool_calls[0], name);
  }
});

await check('chat: streamed delta.tool_calls assemble into a valid call', async () => {
  const stream = await openai.chat.completions.create({
    model, messages: ask, tools, tool_choice: { type: 'function', function: { name: 'count' } },
    max_tokens: 120, stream: true, stream_options: { include_usage: true },
  });
  const calls = [];
  let finish, usage, content = '';
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      if (ch.finish_reason) finish = ch.finish_reason;
      if (ch.delta.content) content += ch.delta.content;
      for (const d of ch.delta.tool_calls || []) {
        if (!calls[d.index]) {
          assert.ok(d.id && d.function.name, 'the first delta of a call names it');
          calls[d.index] = { id: d.id, type: 'function', function: { name: d.function.name, arguments: '' } };
        }
        calls[d.index].function.arguments += d.function.arguments || '';
      }
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(content, '');
  assert.equal(calls.length, 1);
  assertCall(calls[0], 'count');
  assert.ok(usage && usage.completion_tokens > 0);
});

await check('chat: the SDK stream helper gives the same call shape', async () => {
  const runner = openai.chat.completions.stream({
    model, messages: ask, tools: forced, tool_choice: 'required', max_tokens: 120,
  });
  const done = await runner.finalChatCompletion();
  assertCall(done.choices[0].message.tool_calls[0]);
});

await check('chat: a tool round trip renders through the template', async () => {
  const r = await openai.chat.completions.create({
    model, tools, max_tokens: 8, temperature: 0,
    messages: [
      ...ask,
      { role: 'assistant', content: null, tool_calls: [firstCall] },
      { role: 'tool', tool_call_id: firstCall.id, content: '{"temperature": -3}' },
    ],
  });
  assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  // the call and its result are in the prompt: it is longer than without them
  const bare = await openai.chat.completions.create({ model, tools, max_tokens: 1, messages: ask });
  assert.ok(r.usage.prompt_tokens > bare.usage.prompt_tokens + 10,
    `${r.usage.prompt_tokens} vs ${bare.usage.prompt_tokens}`);
});

if (format === 'mistral-args') await check('chat: required among several tools is a clear 400', async () => {
  await assert.rejects(
    openai.chat.completions.create({ model, messages: ask, tools, tool_choice: 'required' }),
    (e) => e.status === 400 && /name the function/.test(e.message));
});

await check('chat: tool_choice none answers in text', async () => {
  const r = await openai.chat.completions.create({ model, messages: ask, tools, tool_choice: 'none', max_tokens: 5 });
  assert.equal(r.choices[0].message.tool_calls, undefined);
  assert.equal(typeof r.choices[0].message.content, 'string');
});

await check('chat: a named function that is not a tool is a 400', async () => {
  await assert.rejects(
    openai.chat.completions.create({ model, messages: ask, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }),
    (e) => e.status === 400 && e.param === 'tool_choice');
});

await check('chat.completions.parse with a zod schema', async () => {
  const Answer = z.object({ city: z.string().max(20), days: z.array(z.boolean()).max(3), ok: z.boolean() });
  const r = await openai.chat.completions.parse({
    model, messages: ask, max_tokens: 150, response_format: zodResponseFormat(Answer, 'answer'),
  });
  const p = r.choices[0].message.parsed;
  assert.ok(p && typeof p.city === 'string' && typeof p.ok === 'boolean', JSON.stringify(p));
});

// ---- Anthropic Messages
await check('messages: tool_choice any gives a tool_use block', async () => {
  const m = await anthropic.messages.create({
    model, max_tokens: 120, messages: ask, tool_choice: { type: 'any' },
    tools: [{ name: 'count', description: 'Count things', input_schema: countParams }],
  });
  assert.equal(m.stop_reason, 'tool_use');
  const use = m.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'count');
  assert.ok(validates(countParams, use.input), JSON.stringify(use.input));
});

await check('messages.stream: a tool_use block with input_json_delta', async () => {
  const stream = anthropic.messages.stream({
    model, max_tokens: 120, messages: ask, tool_choice: { type: 'tool', name: 'get_weather' },
    tools: [{ name: 'get_weather', input_schema: weatherParams }],
  });
  const final = await stream.finalMessage();
  const use = final.content.find((b) => b.type === 'tool_use');
  assert.equal(use.name, 'get_weather');
  assert.ok(validates(weatherParams, use.input), JSON.stringify(use.input));
  // the round trip: the result goes back as a tool_result block
  const m = await anthropic.messages.create({
    model, max_tokens: 4, tools: [{ name: 'get_weather', input_schema: weatherParams }],
    messages: [...ask, { role: 'assistant', content: final.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '-3 C' }] }],
  });
  assert.equal(m.type, 'message');
});

// ---- OpenAI Responses
await check('responses: a forced function call item', async () => {
  const r = await openai.responses.create({
    model, input: 'Count the cats.', max_output_tokens: 120, tool_choice: 'required',
    tools: [{ type: 'function', name: 'count', parameters: countParams, strict: true }],
  });
  const call = r.output.find((o) => o.type === 'function_call');
  assert.equal(call.name, 'count');
  assert.ok(validates(countParams, JSON.parse(call.arguments)));
  // and its output back in the input
  const r2 = await openai.responses.create({
    model, max_output_tokens: 4,
    tools: [{ type: 'function', name: 'count', parameters: countParams }],
    input: [{ role: 'user', content: 'Count the cats.' }, call,
      { type: 'function_call_output', call_id: call.call_id, output: '3' }],
  });
  assert.equal(r2.status === 'completed' || r2.status === 'incomplete', true);
});

await check('responses: text.format json_schema, streamed', async () => {
  const stream = await openai.responses.create({
    model, input: 'Name a city.', max_output_tokens: 150, stream: true,
    text: { format: { type: 'json_schema', name: 'city', strict: true, schema: weatherParams } },
  });
  let text = '';
  for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta;
  assert.ok(validates(weatherParams, JSON.parse(text)), text);
});

// ---- Vercel AI SDK
const compat = createOpenAICompatible({ name: 'hearth', baseURL: `${base}/v1`, supportsStructuredOutputs: true });
await check('ai-sdk: generateText with a required tool', async () => {
  const r = await generateText({
    model: compat(model), prompt: 'Weather in Oslo?', toolChoice: 'required', maxOutputTokens: 120,
    tools: { get_weather: tool({ description: 'The weather now', inputSchema: jsonSchema(weatherParams) }) },
  });
  assert.equal(r.toolCalls.length, 1);
  assert.equal(r.toolCalls[0].toolName, 'get_weather');
  assert.ok(validates(weatherParams, r.toolCalls[0].input), JSON.stringify(r.toolCalls[0].input));
});

await check('ai-sdk: generateObject with a zod schema', async () => {
  const r = await generateObject({
    model: compat(model), prompt: 'A city.', maxOutputTokens: 150,
    schema: z.object({ city: z.string().max(20), big: z.boolean() }),
  });
  assert.equal(typeof r.object.city, 'string');
  assert.equal(typeof r.object.big, 'boolean');
});

await check('ai-sdk: Output.object through generateText', async () => {
  const r = await generateText({
    model: compat(model), prompt: 'A city.', maxOutputTokens: 150,
    output: Output.object({ schema: z.object({ n: z.number().int(), ok: z.boolean() }) }),
  });
  assert.equal(typeof r.output.ok, 'boolean');
});

await check('ai-sdk: the default openai provider (Responses API) with a tool', async () => {
  const oa = createOpenAI({ baseURL: `${base}/v1`, apiKey: 'none' });
  const r = await generateText({
    model: oa(model), prompt: 'Count.', toolChoice: 'required', maxOutputTokens: 120,
    tools: { count: tool({ inputSchema: jsonSchema(countParams) }) },
  });
  assert.equal(r.toolCalls[0].toolName, 'count');
  assert.ok(validates(countParams, r.toolCalls[0].input));
});

// ---- LangChain
const lc = new ChatOpenAI({ model, apiKey: 'none', configuration: { baseURL: `${base}/v1` }, maxTokens: 150, maxRetries: 0 });
await check('langchain: bindTools with tool_choice', async () => {
  const bound = lc.bindTools([{ type: 'function', function: { name: 'count', description: 'Count', parameters: countParams } }],
    { tool_choice: 'count' });
  const m = await bound.invoke('How many?');
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].name, 'count');
  assert.ok(validates(countParams, m.tool_calls[0].args));
});

await check('langchain: withStructuredOutput (json_schema and jsonMode)', async () => {
  const schema = z.object({ city: z.string().max(20), ok: z.boolean() });
  const a = await lc.withStructuredOutput(schema, { method: 'jsonSchema' }).invoke('A city.');
  assert.equal(typeof a.ok, 'boolean');
  const b = await lc.withStructuredOutput(schema, { method: 'functionCalling' }).invoke('A city.');
  assert.equal(typeof b.city, 'string');
});

if (failures) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all tool checks passed');

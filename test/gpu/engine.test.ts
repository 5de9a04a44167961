// LocalEngine's OpenAI-shaped API on real fixture models: chat template rendering, streaming vs not,
// stop strings, abort, the request queue. Add a case per behaviour the Engine interface promises.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from '../../src/api/types.js';
import { generate } from '../../src/engine/generate.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { encodeChatPrompt, renderChatTemplate } from '../../src/model/chat-template.js';
import { fileSource } from '../../src/model/file-source-node.js';
import { fixturePath } from '../fixtures/models.js';
import { bpeVocabMeta, spmVocabMeta } from '../fixtures/vocab.js';
import { gpu } from './helpers.js';

const MESSAGES: ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are a lighthouse keeper.' },
  { role: 'user', content: 'What did you see this morning?' },
];

function templateOf(meta: Record<string, unknown>): string {
  const t = meta['tokenizer.chat_template'];
  if (typeof t !== 'string') throw new Error('fixture vocabulary has no chat template');
  return t;
}

describe('chat template rendering', () => {
  const msgs: ChatCompletionMessageParam[] = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye' },
  ];

  test('SPM fixture ([INST] template) uses bos_token and eos_token', () => {
    const out = renderChatTemplate(templateOf(spmVocabMeta()), msgs, { bosToken: '<s>', eosToken: '</s>' });
    expect(out).toBe('<s>[INST] Hi [/INST] Hello.</s><s>[INST] Bye [/INST]');
  });

  test('llama-bpe fixture (Llama 3 headers) ends with the assistant header', () => {
    const out = renderChatTemplate(templateOf(bpeVocabMeta('llama-bpe')), msgs.slice(0, 1), {
      bosToken: '<|begin_of_text|>',
      eosToken: '<|end_of_text|>',
    });
    expect(out).toBe('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  });

  test('qwen2 fixture (ChatML) with and without the generation prompt', () => {
    const t = templateOf(bpeVocabMeta('qwen2'));
    const opts = { bosToken: '<|endoftext|>', eosToken: '<|im_end|>' };
    expect(renderChatTemplate(t, msgs.slice(0, 1), opts)).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(renderChatTemplate(t, msgs.slice(0, 1), { ...opts, addGenerationPrompt: false })).toBe('<|im_start|>user\nHi<|im_end|>\n');
  });

  test('a model without a template falls back to ChatML', () => {
    expect(renderChatTemplate(null, [{ role: 'system', content: 'S' }, ...msgs.slice(0, 1)], { bosToken: '<s>', eosToken: '</s>' })).toBe(
      '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('a broken template is BAD_MODEL_FILE; raise_exception and bad messages are BAD_REQUEST', () => {
    const opts = { bosToken: '', eosToken: '' };
    const code = (f: () => unknown): string => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(EngineError);
        return (e as EngineError).code;
      }
      return 'no error';
    };
    expect(code(() => renderChatTemplate('{% for m in messages %}{{ m.content }', msgs, opts))).toBe('BAD_MODEL_FILE');
    expect(code(() => renderChatTemplate("{{ raise_exception('roles must alternate') }}", msgs, opts))).toBe('BAD_REQUEST');
    expect(code(() => renderChatTemplate(null, [], opts))).toBe('BAD_REQUEST');
    expect(code(() => renderChatTemplate(null, [{ role: 'tool', content: 'x' } as unknown as ChatCompletionMessageParam], opts))).toBe('BAD_REQUEST');
  });
});

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

const content = (chunks: ChatCompletionChunk[]): string => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');

/** Token counts of a usage object (prompt_tokens_details depends on what the previous request left in the KV cache). */
const counts = (u: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | undefined) =>
  u && { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens };

describe.each(['llama-q8_0', 'qwen2-f32'] as const)('LocalEngine on %s', (name) => {
  let engine: LocalEngine;
  beforeAll(async () => {
    engine = await LocalEngine.load(await gpu(), await fileSource(fixturePath(name)), { maxContext: 128, modelName: name });
  });
  afterAll(async () => {
    await engine.unload();
  });

  test("a follow-up turn reuses the previous turn's full KV blocks, prefills only the rest, and answers as a cold run does", async () => {
    const bs = engine.loaded.runner.opts.blockSize;
    engine.loaded.runner.pool.dropCached();
    const turn1 = [{ role: 'user' as const, content: 'Tell me about the lighthouse and the keeper who lived there.' }];
    const r1 = await engine.chat.completions.create({ messages: turn1, max_tokens: 8, temperature: 0 });
    expect(r1.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(r1.usage!.prompt_tokens).toBeGreaterThan(bs); // at least one full block to share
    const turn2 = [...turn1, { role: 'assistant' as const, content: r1.choices[0]!.message.content ?? '' }, { role: 'user' as const, content: 'And then?' }];
    const warm = await engine.chat.completions.create({ messages: turn2, max_tokens: 8, temperature: 0 });
    const cached = warm.usage!.prompt_tokens_details!.cached_tokens;
    // Every full block of turn 1's prompt is shared (the rendered turn 2 starts with it).
    expect(cached).toBeGreaterThanOrEqual(Math.floor(r1.usage!.prompt_tokens / bs) * bs);
    expect(cached % bs).toBe(0);
    expect(cached).toBeLessThan(warm.usage!.prompt_tokens);
    // With the prefix cache emptied the same request computes everything and says the same.
    engine.loaded.runner.pool.dropCached();
    const cold = await engine.chat.completions.create({ messages: turn2, max_tokens: 8, temperature: 0 });
    expect(cold.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(warm.choices[0]!.message.content).toBe(cold.choices[0]!.message.content);
  });

  test('the loaded model carries the fixture template and the chat prompt has exactly one BOS', () => {
    const m = engine.loaded;
    expect(m.chatTemplate).toBe(templateOf(name === 'qwen2-f32' ? bpeVocabMeta('qwen2') : spmVocabMeta()));
    // The SPM template writes bos_token itself; the tokenizer must not add a second one.
    const tokens = encodeChatPrompt(m.tokenizer, engine.renderChat([{ role: 'user', content: 'Hi' }]));
    const bos = m.tokenizer.bosId;
    const numBos = tokens.filter((t) => t === bos).length;
    if (m.tokenizer.addBos) {
      expect(tokens[0]).toBe(bos);
      expect(numBos).toBe(1);
    } else expect(tokens[0]).not.toBe(bos);
  });

  test('non-streaming greedy chat equals generate() on the rendered prompt', async () => {
    const r = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 12, temperature: 0 });
    const m = engine.loaded;
    const promptTokens = encodeChatPrompt(
      m.tokenizer,
      renderChatTemplate(m.chatTemplate, MESSAGES, {
        bosToken: m.tokenizer.bosId === null ? '' : m.tokenizer.tokenText(m.tokenizer.bosId),
        eosToken: m.tokenizer.eosId === null ? '' : m.tokenizer.tokenText(m.tokenizer.eosId),
      }),
    );
    const g = await generate(m, { promptTokens, maxTokens: 12, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe(name);
    expect(r.choices[0]!.message).toEqual({ role: 'assistant', content: g.text, refusal: null });
    expect(r.choices[0]!.finish_reason).toBe(g.finishReason);
    expect(counts(r.usage)).toEqual({
      prompt_tokens: promptTokens.length,
      completion_tokens: g.tokens.length,
      total_tokens: promptTokens.length + g.tokens.length,
    });
    expect(r.choices[0]!.logprobs).toBeNull();
  });

  test('streaming yields the same content in several chunks, usage and finish_reason on the last', async () => {
    const r = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 12, temperature: 0 });
    const chunks = await collect(await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 12, temperature: 0, stream: true }));
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(content(chunks)).toBe(r.choices[0]!.message.content);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0]!.finish_reason).toBe(r.choices[0]!.finish_reason);
    expect(counts(last.usage)).toEqual(counts(r.usage));
    for (const c of chunks.slice(0, -1)) {
      expect(c.choices[0]!.finish_reason).toBeNull();
      expect(c.usage).toBeUndefined();
      expect(new Set([c.id, c.object])).toEqual(new Set([chunks[0]!.id, 'chat.completion.chunk']));
    }
  });

  test('logprobs: greedy tokens are the top alternative', async () => {
    const r = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
    const lp = r.choices[0]!.logprobs!.content!;
    expect(lp.length).toBe(r.usage.completion_tokens);
    for (const e of lp) {
      expect(e.top_logprobs.length).toBe(3);
      expect(e.logprob).toBe(e.top_logprobs[0]!.logprob);
      expect(e.logprob).toBeLessThanOrEqual(0);
    }
    expect(lp.map((e) => e.token).join('')).toBe(r.choices[0]!.message.content);
  });

  test('a stop string truncates the text and gives finish_reason stop, streamed or not', async () => {
    const fullR = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 16, temperature: 0 });
    const full = fullR.choices[0]!.message.content;
    expect(full.length).toBeGreaterThan(6);
    const stop = full.slice(4, 6);
    const expected = full.slice(0, full.indexOf(stop));
    const r = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 16, temperature: 0, stop: [stop, '\u0000never'] });
    expect(r.choices[0]!.message.content).toBe(expected);
    expect(r.choices[0]!.finish_reason).toBe('stop');
    const chunks = await collect(await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 16, temperature: 0, stop, stream: true }));
    expect(content(chunks)).toBe(expected);
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe('stop');
    // A stop string that starts matching but never completes is held back, then released in full.
    const never = `${stop}\u0001`;
    const heldChunks = await collect(await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 16, temperature: 0, stop: never, stream: true }));
    expect(content(heldChunks)).toBe(full);
    expect(heldChunks[heldChunks.length - 1]!.choices[0]!.finish_reason).toBe(fullR.choices[0]!.finish_reason);
  });

  test('abort mid-stream ends with finish_reason abort; the next request works', async () => {
    const alone = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 40, temperature: 0 });
    const ac = new AbortController();
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 40, temperature: 0, stream: true, signal: ac.signal })) {
      chunks.push(c);
      if (chunks.length === 3) ac.abort();
    }
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0]!.finish_reason).toBe('abort');
    // Chunks arrive as tokens are produced: the abort after the third chunk stops generation early.
    expect(last.usage!.completion_tokens).toBeLessThan(alone.usage.completion_tokens);
    expect(alone.choices[0]!.message.content.startsWith(content(chunks))).toBe(true);
    const after = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 40, temperature: 0 });
    expect(after.choices[0]!.message.content).toBe(alone.choices[0]!.message.content);
  });

  test('breaking out of a stream stops generation and frees the queue', async () => {
    const alone = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 20, temperature: 0 });
    let n = 0;
    for await (const c of await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 20, temperature: 0, stream: true })) {
      expect(c.choices[0]!.finish_reason).toBeNull();
      if (++n === 2) break;
    }
    const after = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 20, temperature: 0 });
    expect(after.choices[0]).toEqual(alone.choices[0]);
  });

  test('a prompt longer than the context rejects create() itself, streamed or not', async () => {
    const long = [{ role: 'user' as const, content: 'the lighthouse keeper '.repeat(100) }];
    await expect(engine.chat.completions.create({ messages: long, stream: true })).rejects.toMatchObject({ code: 'CONTEXT_OVERFLOW' });
    await expect(engine.completions.create({ prompt: long[0]!.content })).rejects.toMatchObject({ code: 'CONTEXT_OVERFLOW' });
  });

  test('a non-streamed request with an aborted signal rejects with ABORTED', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(engine.chat.completions.create({ messages: MESSAGES, max_tokens: 8, signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  test('two concurrent create() calls are served together and both return what they return alone', async () => {
    const a = { messages: MESSAGES, max_tokens: 10, temperature: 0 };
    const b = { messages: [{ role: 'user' as const, content: 'Tell me about the sea.' }], max_tokens: 10, temperature: 0.9, seed: 7 };
    const aloneA = await engine.chat.completions.create(a);
    const aloneB = await engine.chat.completions.create(b);
    const [streamA, rB] = await Promise.all([engine.chat.completions.create({ ...a, stream: true }), engine.chat.completions.create(b)]);
    expect(content(await collect(streamA))).toBe(aloneA.choices[0]!.message.content);
    expect(rB.choices[0]!.message.content).toBe(aloneB.choices[0]!.message.content);
    const [rA2, rB2] = await Promise.all([engine.chat.completions.create(a), engine.chat.completions.create(b)]);
    expect(rA2.choices[0]).toEqual(aloneA.choices[0]);
    expect(rB2.choices[0]).toEqual(aloneB.choices[0]);
  });

  test('completions.create: raw prompt, streamed text equals non-streamed', async () => {
    const prompt = 'The old lighthouse keeper';
    const r = await engine.completions.create({ prompt, max_tokens: 10, temperature: 0, logprobs: 2 });
    const m = engine.loaded;
    const g = await generate(m, { prompt, maxTokens: 10, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.text).toBe(g.text);
    expect(r.choices[0]!.logprobs!.tokens.length).toBe(g.tokens.length);
    const chunks = [];
    for await (const c of await engine.completions.create({ prompt, max_tokens: 10, temperature: 0, stream: true })) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe(g.text);
    expect(counts(chunks[chunks.length - 1]!.usage)).toEqual(counts(r.usage));
  });
});

test('after unload() requests fail with NOT_LOADED', async () => {
  const engine = await LocalEngine.load(await gpu(), await fileSource(fixturePath('llama-q8_0')), { maxContext: 64 });
  await engine.unload();
  await expect(engine.chat.completions.create({ messages: MESSAGES })).rejects.toMatchObject({ code: 'NOT_LOADED' });
});

// The semantic cache inside LocalEngine (issue 6): a repeated question is answered from the cache
// (non-streamed and streamed) with `hearth.cache`; nothing crosses system prompts or sampling
// settings; sampled requests hit only when they allow it; aborted and logprob requests store nothing.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LexicalEmbedder } from '../../src/cache/lexical.js';
import { SemanticCache } from '../../src/cache/semantic-cache.js';
import { MemoryStore } from '../../src/cache/store.js';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from '../../src/api/types.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { fileSource } from '../../src/model/file-source-node.js';
import { fixturePath } from '../fixtures/models.js';
import { gpu } from './helpers.js';

describe('LocalEngine with a semantic cache', () => {
  let engine: LocalEngine;
  let cache: SemanticCache;
  beforeAll(async () => {
    cache = await SemanticCache.create({ embedder: new LexicalEmbedder(), store: new MemoryStore() });
    engine = await LocalEngine.load(await gpu(), await fileSource(fixturePath('llama-q8_0')), { maxContext: 256, semanticCache: cache });
  });
  afterAll(async () => {
    await engine.unload();
  });

  const ask = (system: string, q: string): ChatCompletionMessageParam[] => [
    { role: 'system', content: system },
    { role: 'user', content: q },
  ];
  const SYS = 'You are the help desk of a bicycle shop.';

  test('a repeat in other case, punctuation and filler is answered from the cache, streamed or not; the first ask is a miss', async () => {
    const before = cache.size;
    const miss = await engine.chat.completions.create({
      messages: ask(SYS, 'How do I reset my password?'),
      max_tokens: 12,
      temperature: 0,
      cache: { semantic: true },
    });
    expect(miss.hearth).toEqual({ cache: { hit: false } });
    expect(cache.size).toBe(before + 1);
    const hit = await engine.chat.completions.create({
      messages: ask(SYS, 'hi, how do i reset my password'),
      max_tokens: 12,
      temperature: 0,
      cache: { semantic: true },
    });
    expect(hit.hearth?.cache?.hit).toBe(true);
    expect(hit.hearth?.cache?.similarity).toBeGreaterThanOrEqual(cache.threshold);
    expect(hit.choices[0]!.message.content).toBe(miss.choices[0]!.message.content);
    expect(hit.choices[0]!.finish_reason).toBe(miss.choices[0]!.finish_reason);
    expect(hit.usage.completion_tokens).toBe(miss.usage.completion_tokens);
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({
      messages: ask(SYS, 'How do I reset my password???'),
      max_tokens: 12,
      temperature: 0,
      stream: true,
      cache: { semantic: true },
    }))
      chunks.push(c);
    expect(chunks.every((c) => c.hearth?.cache?.hit === true)).toBe(true);
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(miss.choices[0]!.message.content);
    expect(chunks.at(-1)!.usage?.completion_tokens).toBe(miss.usage.completion_tokens);
    expect(cache.size).toBe(before + 1);
  });

  test('no answer crosses system prompts, sampling settings or a near-miss question', async () => {
    const q = 'Where is my order?';
    await engine.chat.completions.create({ messages: ask(SYS, q), max_tokens: 8, temperature: 0, cache: { semantic: true } });
    const otherSystem = await engine.chat.completions.create({
      messages: ask('You are a pirate.', q),
      max_tokens: 8,
      temperature: 0,
      cache: { semantic: true },
    });
    expect(otherSystem.hearth?.cache?.hit).toBe(false);
    const otherLength = await engine.chat.completions.create({ messages: ask(SYS, q), max_tokens: 9, temperature: 0, cache: { semantic: true } });
    expect(otherLength.hearth?.cache?.hit).toBe(false);
    const nearMiss = await engine.chat.completions.create({
      messages: ask(SYS, 'Where is my invoice?'),
      max_tokens: 8,
      temperature: 0,
      cache: { semantic: true },
    });
    expect(nearMiss.hearth?.cache?.hit).toBe(false);
    const same = await engine.chat.completions.create({ messages: ask(SYS, 'where is my order'), max_tokens: 8, temperature: 0, cache: { semantic: true } });
    expect(same.hearth?.cache?.hit).toBe(true);
  });

  test('a sampled request takes a stored answer only when it allows it', async () => {
    const q = 'Can I return a helmet?';
    const p = { messages: ask(SYS, q), max_tokens: 8, temperature: 0.8, seed: 3, cache: { semantic: true } };
    expect((await engine.chat.completions.create(p)).hearth?.cache?.hit).toBe(false);
    expect((await engine.chat.completions.create(p)).hearth?.cache?.hit).toBe(false);
    expect((await engine.chat.completions.create({ ...p, cache: { semantic: true, allowSampled: true } })).hearth?.cache?.hit).toBe(true);
  });

  test('without opting in, with logprobs, or aborted, nothing is looked up or stored', async () => {
    const before = cache.size;
    const plain = await engine.chat.completions.create({ messages: ask(SYS, 'Do you sell tires?'), max_tokens: 6, temperature: 0 });
    expect(plain.hearth).toBeUndefined();
    const lp = await engine.chat.completions.create({
      messages: ask(SYS, 'Do you sell tires?'),
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      cache: { semantic: true },
    });
    expect(lp.hearth).toBeUndefined();
    const ac = new AbortController();
    const stream = await engine.chat.completions.create({
      messages: ask(SYS, 'Do you sell bells?'),
      max_tokens: 30,
      temperature: 0,
      stream: true,
      signal: ac.signal,
      cache: { semantic: true },
    });
    let last: ChatCompletionChunk | undefined;
    for await (const c of stream) {
      if (c.choices[0]!.delta.content) ac.abort();
      last = c;
    }
    expect(last!.choices[0]!.finish_reason).toBe('abort');
    await cache.flush();
    expect(cache.size).toBe(before);
  });
});

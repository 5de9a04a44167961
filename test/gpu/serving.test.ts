// The serving core on the GPU (src/engine/scheduler.ts over model/forward.ts): prefix-cache hits,
// preemption and per-sequence sampling give exactly the tokens of an undisturbed solo run, and a
// 64-request stress run with aborts on a pool too small for all leaves the pool whole.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generate, type GenerateRequest, type GenerateResult } from '../../src/engine/generate.js';
import type { SpeculativeOptions } from '../../src/engine/scheduler.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { fileSource } from '../../src/model/file-source-node.js';
import { ModelRunner } from '../../src/model/forward.js';
import { loadModel, type LoadedModel, type LoadOptions } from '../../src/model/model.js';
import { FIXTURES, fixturePath, type FixtureSpec } from '../fixtures/models.js';
import { GGMLType } from '../../src/model/gguf.js';
import { rng } from '../fixtures/random.js';
import { expectClose, gpu } from './helpers.js';
import { fullTree } from '../../src/spec/tree.js';

const FIXTURE = 'llama-q8_0';

/** The fixture loaded with these options; destroy() also closes the file. */
async function load(opts: LoadOptions): Promise<LoadedModel> {
  const src = await fileSource(fixturePath(FIXTURE));
  const m = await loadModel(await gpu(), src, opts);
  const destroy = m.destroy.bind(m);
  return {
    ...m,
    destroy: () => {
      destroy();
      void src.close?.();
    },
  };
}

/** Token ids of the fixture's vocabulary that are plain pieces (no control tokens). */
function words(m: LoadedModel, r: () => number, n: number): number[] {
  const out: number[] = [];
  while (out.length < n) {
    const t = 3 + Math.floor(r() * (m.cfg.vocabSize - 3));
    if (!m.tokenizer.isEog(t)) out.push(t);
  }
  return out;
}

describe('serving on the GPU', () => {
  let model: LoadedModel;
  beforeAll(async () => {
    model = await load({ maxContext: 256, maxBatch: 64, blockSize: 16 });
  });
  afterAll(() => model.destroy());

  test('a prefix-cache hit gives output identical to a cold run', async () => {
    const r = rng(5);
    const system = words(model, r, 70); // 4 full blocks shared
    const ask = (tail: number[]): GenerateRequest => ({ promptTokens: [model.tokenizer.bosId ?? 1, ...system, ...tail], maxTokens: 12, temperature: 0 });
    model.runner.pool.dropCached();
    const first = await generate(model, ask(words(model, r, 5)));
    expect(first.cachedTokens).toBe(0);
    const q = ask(words(model, r, 7));
    const warm = await generate(model, q);
    expect(warm.cachedTokens).toBe(64);
    model.runner.pool.dropCached();
    const cold = await generate(model, q);
    expect(cold.cachedTokens).toBe(0);
    expect(warm.tokens).toEqual(cold.tokens);
    expect(warm.tokenLogprobs.length).toBe(cold.tokenLogprobs.length);
  });

  // Every drafter and tree shape, verified on the GPU (shaders/spec.wgsl) with the accepted KV
  // moved into place (kv-move.wgsl): token for token the plain greedy output, logprobs included.
  const SPECS: [name: string, spec: SpeculativeOptions][] = [
    ['n-gram chain', { draft: 'ngram', depth: 4 }],
    ['n-gram tree of width 2', { draft: 'ngram', tree: { width: 2, depth: 3 } }],
    ['self-draft chain', { draft: 'self:1', tree: { width: 1, depth: 3 } }],
    ['self-draft binary tree', { draft: 'self:1', tree: { width: 2, depth: 3 } }],
  ];
  test.each(SPECS)('speculative decoding (%s) gives the plain greedy tokens and logprobs, alone and batched', async (name, spec) => {
    const r = rng(9);
    // Repetitive prompts (a phrase said three times), where prompt lookup drafts well.
    const reqs: GenerateRequest[] = [0, 1, 2].map((i) => {
      const phrase = words(model, r, 5 + i);
      return { promptTokens: [...phrase, ...phrase, ...phrase], maxTokens: 40, temperature: 0, logprobs: 2 };
    });
    const plain: GenerateResult[] = [];
    for (const q of reqs) plain.push(await generate(model, q));
    const before = model.scheduler.stats();
    const alone = await generate(model, { ...reqs[0]!, speculative: spec });
    expect(alone.tokens).toEqual(plain[0]!.tokens);
    const together = await Promise.all(reqs.map((q) => generate(model, { ...q, speculative: spec })));
    together.forEach((t, i) => {
      expect(t.tokens, `request ${i}`).toEqual(plain[i]!.tokens);
      const lp = (g: GenerateResult): number[] => g.tokenLogprobs;
      lp(t).forEach((x, j) => expect(x, `request ${i} token ${j}`).toBeCloseTo(lp(plain[i]!)[j]!, 4));
      expect(t.logprobs.map((l) => l.map((e) => e.token))).toEqual(plain[i]!.logprobs.map((l) => l.map((e) => e.token)));
    });
    const after = model.scheduler.stats();
    const drafted = after.draftedTokens - before.draftedTokens;
    const accepted = after.acceptedDraftTokens - before.acceptedDraftTokens;
    console.log(`speculative ${name}: ${accepted} of ${drafted} drafted tokens accepted in ${after.verifySteps - before.verifySteps} verify steps`);
    expect(after.verifySteps).toBeGreaterThan(before.verifySteps);
    if (spec.draft === 'ngram') expect(accepted).toBeGreaterThan(0);
    expect(model.runner.pool.stats().used).toBe(0);
  });

  test('each sequence of a batch samples with its own temperature, top-k/p and seed', async () => {
    const r = rng(6);
    const reqs: GenerateRequest[] = [
      { promptTokens: words(model, r, 5), maxTokens: 10, temperature: 0 },
      { promptTokens: words(model, r, 9), maxTokens: 10, temperature: 0.9, topK: 20, seed: 7 },
      { promptTokens: words(model, r, 3), maxTokens: 10, temperature: 1.4, topP: 0.9, seed: 8 },
      { promptTokens: words(model, r, 12), maxTokens: 10, temperature: 0.7, topK: 5, topP: 0.8, seed: 9, logprobs: 3 },
    ];
    const alone: GenerateResult[] = [];
    for (const q of reqs) alone.push(await generate(model, q));
    const together = await Promise.all(reqs.map((q) => generate(model, q)));
    together.forEach((t, i) => {
      expect(t.tokens, `request ${i}`).toEqual(alone[i]!.tokens);
      expect(t.logprobs.map((l) => l.map((e) => e.token))).toEqual(alone[i]!.logprobs.map((l) => l.map((e) => e.token)));
    });
  });
});

describe('preemption and stress on a small pool', () => {
  let model: LoadedModel;
  beforeAll(async () => {
    // 128 tokens of KV (8 blocks of 16) for sequences of up to 96: several requests cannot all fit.
    model = await load({ maxContext: 96, kvCacheTokens: 128, maxBatch: 32, maxSeqs: 8, blockSize: 16 });
  });
  afterAll(() => model.destroy());

  test('a preempted request gives output identical to an uninterrupted one', async () => {
    const r = rng(7);
    const reqs: GenerateRequest[] = [0, 1, 2].map(() => ({ promptTokens: words(model, r, 20), maxTokens: 40, temperature: 0 }));
    const alone: GenerateResult[] = [];
    for (const q of reqs) alone.push(await generate(model, q));
    const before = model.scheduler.stats().preemptions;
    const together = await Promise.all(reqs.map((q) => generate(model, q)));
    expect(model.scheduler.stats().preemptions).toBeGreaterThan(before);
    expect(together.some((t) => t.preemptions > 0)).toBe(true);
    together.forEach((t, i) => expect(t.tokens, `request ${i}`).toEqual(alone[i]!.tokens));
  });

  test('stress: 64 concurrent requests, random lengths and aborts; every request ends cleanly, the pool is whole, outputs equal solo runs', async () => {
    const r = rng(8);
    const shared = words(model, r, 20);
    const ctls: AbortController[] = [];
    const reqs: GenerateRequest[] = [];
    const abortAfter: (number | null)[] = [];
    for (let i = 0; i < 64; i++) {
      const prompt = r() < 0.5 ? [...shared, ...words(model, r, 1 + Math.floor(r() * 10))] : words(model, r, 1 + Math.floor(r() * 30));
      const ac = new AbortController();
      const after = r() < 0.2 ? Math.floor(r() * 6) : null;
      let n = 0;
      ctls.push(ac);
      abortAfter.push(after);
      reqs.push({
        promptTokens: prompt,
        maxTokens: 1 + Math.floor(r() * 16),
        temperature: 0,
        signal: ac.signal,
        onToken: () => void (after !== null && ++n >= after && ac.abort()),
      });
    }
    const s = model.scheduler;
    let steps = 0;
    s.afterStep = () => {
      s.checkInvariants();
      steps++;
    };
    // A few are aborted before they produce anything (at once, or while queued).
    abortAfter.forEach((a, i) => a === 0 && setTimeout(() => ctls[i]!.abort(), 0));
    let outs: GenerateResult[];
    try {
      outs = await Promise.all(reqs.map((q) => generate(model, q)));
    } finally {
      s.afterStep = null;
    }
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0 });
    expect(model.runner.pool.stats().used).toBe(0);
    model.runner.pool.check(new Map());
    expect(steps).toBeGreaterThan(10);
    let finished = 0;
    for (const [i, q] of reqs.entries()) {
      const out = outs[i]!;
      if (out.finishReason === 'abort') {
        expect(abortAfter[i], `request ${i} aborted by itself`).not.toBeNull();
        continue;
      }
      finished++;
      const solo = await generate(model, { ...q, signal: undefined, onToken: undefined });
      expect(out.tokens, `request ${i}`).toEqual(solo.tokens);
    }
    expect(finished).toBeGreaterThan(40);
  }, 240_000);
});

describe('a pool smaller than the context', () => {
  test('a request that could outgrow the whole pool is refused at create() with OUT_OF_KV_BLOCKS and the numbers; one that fits runs', async () => {
    // 64 tokens of KV (4 blocks of 16) for sequences of up to 256 tokens.
    const engine = await LocalEngine.load(await gpu(), await fileSource(fixturePath(FIXTURE)), { maxContext: 256, kvCacheTokens: 64, blockSize: 16 });
    try {
      const prompt = 'Once upon a time';
      const n = engine.loaded.tokenizer.encode(prompt, { addBos: engine.loaded.tokenizer.addBos, parseSpecial: true }).length;
      const tooMany = 64 - n + 2; // peak KV = n + max_tokens - 1 = 65 tokens: 5 blocks
      const e = await engine.completions.create({ prompt, max_tokens: tooMany, stream: true }).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'OUT_OF_KV_BLOCKS', details: { needBlocks: 5, numBlocks: 4, blockSize: 16, promptTokens: n, maxTokens: tooMany } });
      // Unbounded max_tokens is bounded by the context (256), which the pool cannot hold either.
      await expect(engine.completions.create({ prompt })).rejects.toMatchObject({ code: 'OUT_OF_KV_BLOCKS' });
      const ok = await engine.completions.create({ prompt, max_tokens: tooMany - 1, temperature: 0 });
      expect(ok.usage!.completion_tokens).toBeGreaterThan(0);
      expect(engine.loaded.runner.pool.stats().used).toBe(0);
    } finally {
      await engine.unload();
    }
  });

  test('bad serving options are BAD_REQUEST with the number', async () => {
    const load = async (o: LoadOptions): Promise<unknown> => loadModel(await gpu(), await fileSource(fixturePath(FIXTURE)), o).catch((x: unknown) => x);
    await expect(load({ blockSize: 12 })).resolves.toMatchObject({ code: 'BAD_REQUEST', details: { blockSize: 12 } });
    await expect(load({ kvCacheTokens: 0 })).resolves.toMatchObject({ code: 'BAD_REQUEST', details: { kvCacheTokens: 0 } });
    await expect(load({ maxSeqs: 0 })).resolves.toMatchObject({ code: 'BAD_REQUEST', details: { maxSeqs: 0 } });
  });
});

describe('speculative decoding with a draft model', () => {
  // The draft: the same random weights quantized to Q4_0 (the target is Q8_0), so they mostly agree.
  const target = FIXTURES[FIXTURE]!;
  const draftSpec: FixtureSpec = { ...target, name: `${target.name}-draft-q4_0`, type: GGMLType.Q4_0 };

  test("a draft model's catch-up rides in the tree's first level, leaves the KV a plain feed leaves (also past one step) and paces the readback by the tokens fed", async () => {
    // maxBatch 8: 12 missing tokens do not fit beside the root, so 5 go first in a pass of their own; 3 fit.
    const draftSrc = await fileSource(fixturePath(draftSpec));
    const model = await load({ maxContext: 256, maxBatch: 8, blockSize: 16, draft: draftSrc });
    try {
      const dr = model.draft!.runner;
      const r = rng(31);
      const prompt = Array.from({ length: 30 }, () => Math.floor(r() * model.cfg.vocabSize));
      const root = 7;
      const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
      const shape = fullTree(1, 4);
      const job = { root, startPos: 30, shape, method: 'greedy' as const, temperature: 0, draftTemperature: 0, seed: 0, counter: 0 };
      // What the draft's KV of positions 0..29 gives: the logits of a probe token at position 30.
      const probe = async (blocks: readonly number[]): Promise<Float32Array> =>
        (await dr.runLogits([{ blocks, tokens: [11], startPos: 30, sample: { sampling: greedy, counter: 0 } }]))[0]!;
      // Reference: the whole prompt fed plainly, then the tree.
      const a = dr.solo();
      await a.forwardSample(prompt, 0, greedy, 0);
      a.reserve(36);
      const [treeA] = await dr.draftTrees([{ ...job, blocks: a.blocks }]);
      const logitsA = await probe(a.blocks);
      // The readback is paced (gpu/pacing.ts) by the tokens fed: 12 behind at maxBatch 8 feeds 5 on
      // their own, then 7 + the root, then 3 levels of one; 3 behind feeds 3 + the root, then 3.
      const keys: string[] = [];
      const read = dr as unknown as { stagingRead(buf: GPUBuffer, words: number, key: string): Promise<Uint32Array> };
      const stagingRead = read.stagingRead.bind(dr);
      read.stagingRead = (buf, words, key) => (keys.push(key), stagingRead(buf, words, key));
      for (const [behind, fed] of [
        [12, 16],
        [3, 7],
      ] as const) {
        const b = dr.solo();
        await b.forwardSample(prompt.slice(0, 30 - behind), 0, greedy, 0);
        b.reserve(36);
        keys.length = 0;
        const [treeB] = await dr.draftTrees([{ ...job, blocks: b.blocks, catchUp: { from: 30 - behind, tokens: prompt.slice(30 - behind) } }]);
        expect(keys).toEqual([`draft:${model.draft!.cfg.numLayers}:5:${fed}`]);
        expect(treeB!.tokens, `${behind} behind`).toEqual(treeA!.tokens);
        expectClose(await probe(b.blocks), logitsA, { maxNmse: 1e-8 });
        b.release();
      }
      a.release();
      expect(dr.pool.stats().used).toBe(0);
    } finally {
      model.destroy();
      await draftSrc.close?.();
    }
  });

  test('greedy output equals the plain output, the draft catches up after prefill and preemption; most drafts are accepted', async () => {
    // A pool of 14 blocks for three requests of up to 128 + a tree: some are preempted and recomputed, the draft's KV with them.
    const draftSrc = await fileSource(fixturePath(draftSpec));
    const model = await load({ maxContext: 256, maxBatch: 64, blockSize: 16, kvCacheTokens: 224, draft: draftSrc });
    try {
      expect(model.draft?.cfg.vocabSize).toBe(model.cfg.vocabSize);
      const r = rng(21);
      const reqs: GenerateRequest[] = [0, 1, 2].map((i) => ({ promptTokens: words(model, r, 20 + 30 * i), maxTokens: 48, temperature: 0 }));
      const plain: GenerateResult[] = [];
      for (const q of reqs) plain.push(await generate(model, q));
      for (const spec of [
        { draft: 'model', depth: 4 },
        { draft: 'model', tree: { width: 2, depth: 3 } },
      ] as SpeculativeOptions[]) {
        const before = model.scheduler.stats();
        const outs = await Promise.all(reqs.map((q) => generate(model, { ...q, speculative: spec })));
        outs.forEach((o, i) => expect(o.tokens, `${JSON.stringify(spec)} request ${i}`).toEqual(plain[i]!.tokens));
        const after = model.scheduler.stats();
        const drafted = after.draftedTokens - before.draftedTokens;
        const accepted = after.acceptedDraftTokens - before.acceptedDraftTokens;
        const steps = after.verifySteps - before.verifySteps;
        console.log(
          `draft model ${JSON.stringify(spec)}: ${accepted} of ${drafted} drafted tokens accepted, ${((accepted + steps) / steps).toFixed(2)} tokens per target pass`,
        );
        // A Q4_0 copy of the target's weights agrees with it on most greedy tokens: well over one token per pass.
        expect((accepted + steps) / steps).toBeGreaterThan(1.5);
        expect(after.preemptions).toBeGreaterThan(before.preemptions);
      }
      expect(model.runner.pool.stats().used).toBe(0);
    } finally {
      model.destroy();
      await draftSrc.close?.();
    }
  });

  test('a draft with another vocabulary is BAD_MODEL_FILE with the numbers; one over the GPU budget MODEL_TOO_LARGE; draft "model" without one is BAD_REQUEST', async () => {
    const other = await fileSource(fixturePath('llama-q4_0'));
    const err = await load({ maxContext: 64, draft: other }).catch((x: unknown) => x);
    await other.close?.();
    expect(err).toMatchObject({ code: 'BAD_MODEL_FILE', details: { firstDifference: expect.any(Number) } });
    const model = await load({ maxContext: 64 });
    // Room for the target but not its draft: MODEL_TOO_LARGE before the draft allocates anything.
    const weightBytes = model.weights.buffers.reduce((a, b) => a + b.size, 0);
    const targetBytes = weightBytes + Math.max(model.runner.runtimeBytes, ModelRunner.estimateBytes(model.cfg, model.runner.opts));
    try {
      await expect(generate(model, { promptTokens: [1, 2, 3], maxTokens: 2, temperature: 0, speculative: { draft: 'model' } })).rejects.toMatchObject({
        code: 'BAD_REQUEST',
      });
    } finally {
      model.destroy();
    }
    const draftSrc = await fileSource(fixturePath(draftSpec));
    const tooBig = await load({ maxContext: 64, gpuBudgetBytes: targetBytes + 1024, draft: draftSrc }).catch((x: unknown) => x);
    await draftSrc.close?.();
    expect(tooBig).toMatchObject({ code: 'MODEL_TOO_LARGE' });
    // The draft's budget is what the target left.
    expect(tooBig).toMatchObject({ details: { budgetBytes: targetBytes + 1024 - weightBytes - model.runner.runtimeBytes } });
  });
});

describe('speculative decoding through the engine API', () => {
  test('the engine default and the per-request setting give the plain greedy text; a bad setting is BAD_REQUEST', async () => {
    const engine = await LocalEngine.load(await gpu(), await fileSource(fixturePath(FIXTURE)), { maxContext: 256, speculative: { draft: 'ngram', depth: 4 } });
    try {
      const prompt = 'one two three one two three one two three';
      const off = await engine.completions.create({ prompt, max_tokens: 64, temperature: 0, speculative: null });
      const before = engine.loaded.scheduler.stats().verifySteps;
      const on = await engine.completions.create({ prompt, max_tokens: 64, temperature: 0 });
      expect(on.choices[0]!.text).toBe(off.choices[0]!.text);
      expect(engine.loaded.scheduler.stats().verifySteps).toBeGreaterThan(before);
      await expect(engine.completions.create({ prompt, max_tokens: 4, temperature: 0, speculative: { draft: 'ngram', depth: 99 } })).rejects.toMatchObject({
        code: 'BAD_REQUEST',
      });
    } finally {
      await engine.unload();
    }
  });
});

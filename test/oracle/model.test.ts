// Whole-model evidence on every fixture (both architectures, every tensor type): hearth against
// llama.cpp (greedy tokens, next-token distributions) and, for quantized types, against the exact
// float64 reference, since llama.cpp quantizes activations inside quantized matmuls.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generate, type GenerateResult } from '../../src/engine/generate.js';
import { fileSource } from '../../src/model/file-source-node.js';
import { GGMLType } from '../../src/model/gguf.js';
import { loadModel, type LoadedModel } from '../../src/model/model.js';
import { FIXTURES, fixturePath } from '../fixtures/models.js';
import { gpu } from '../gpu/helpers.js';
import { oracle, softmax, totalVariation, type OracleJob, type OracleRun } from './llama-cpp.js';
import { RefModel } from './ref-model.js';

const STEPS = 32;
const PROMPT = 'The old lighthouse keeper woke before dawn, as he had';

/**
 * Bounds on the total variation between hearth and llama.cpp, per weight type of the fixture.
 * F32: 1e-4 (measured ~1.4e-6: both are exact up to f32 rounding, with llama.cpp run on an f32 KV
 * cache without flash attention, see llama-cpp.ts). F16: the 1e-3 (llama.cpp rounds the
 * activations to f16 before F16 matmuls: measured ~4e-4).
 * Quantized: llama.cpp quantizes the activations to Q8 (Q8_K for K-quants) before each quantized
 * matmul, so it is not exact dequantize-then-multiply; on these random-weight fixtures that alone
 * moves the distribution by TV ~0.012 (Q8_0) to ~0.023 (Q4_0) here; DESIGN.md measured up to 0.11 on
 * a first token of other fixtures. The bound is 0.05; the exact check is against RefModel.
 */
const TV_LLAMA: Record<number, number> = {
  [GGMLType.F32]: 1e-4,
  [GGMLType.F16]: 1e-3,
  [GGMLType.Q8_0]: 0.05,
  [GGMLType.Q4_0]: 0.05,
  [GGMLType.Q4_K]: 0.05,
  [GGMLType.Q6_K]: 0.05,
};
/** hearth (f32 on the GPU) against the float64 exact reference: f32 rounding only (measured <= 1.3e-6). */
const TV_REF = 1e-5;

/** More prompts of different lengths, generated together with PROMPT in one batch (continuous batching). */
const BATCH_PROMPTS = [
  'Once',
  'The ship sailed west across the grey water while the crew',
  'A small dog',
  'In the morning the baker opened the shop and the first customer',
];
const BATCH_STEPS = 16;

const names = Object.keys(FIXTURES);
const oracleRuns = new Map<string, OracleRun>();
const prompts = new Map<string, number[]>();
/** llama.cpp's greedy tokens for BATCH_PROMPTS, for the exact (F32/F16) fixtures. */
const batchRuns = new Map<string, { prompt: number[]; tokens: number[] }[]>();
const exactType = (name: string): boolean => FIXTURES[name]!.type === GGMLType.F32 || FIXTURES[name]!.type === GGMLType.F16;

beforeAll(async () => {
  const ctx = await gpu();
  const jobs: OracleJob[] = [];
  for (const name of names) {
    const path = fixturePath(name);
    const src = await fileSource(path);
    const m = await loadModel(ctx, src, { maxContext: 96, maxBatch: 32 });
    const prompt = m.tokenizer.encode(PROMPT, { addBos: m.tokenizer.addBos });
    prompts.set(name, prompt);
    jobs.push({ modelPath: path, prompt, steps: STEPS, vocabSize: m.cfg.vocabSize });
    if (exactType(name))
      for (const text of BATCH_PROMPTS)
        jobs.push({ modelPath: path, prompt: m.tokenizer.encode(text, { addBos: m.tokenizer.addBos }), steps: BATCH_STEPS, vocabSize: m.cfg.vocabSize });
    m.destroy();
    await src.close?.();
  }
  const runs = await oracle(jobs);
  let j = 0;
  for (const n of names) {
    oracleRuns.set(n, runs[j++]!);
    if (exactType(n))
      batchRuns.set(
        n,
        BATCH_PROMPTS.map(() => {
          const job = jobs[j]!;
          return { prompt: job.prompt, tokens: runs[j++]!.tokens };
        }),
      );
  }
}, 600_000);

const argmax = (p: ArrayLike<number>): number => {
  let b = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[b]!) b = i;
  return b;
};

describe.each(names)('%s', (name) => {
  const spec = FIXTURES[name]!;
  let model: LoadedModel;
  let close: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const src = await fileSource(fixturePath(name));
    close = src.close;
    model = await loadModel(await gpu(), src, { maxContext: 96, maxBatch: 32 });
  });
  afterAll(async () => {
    model.destroy();
    await close?.();
  });

  test('weights take at most 1.05x the tensor data on the GPU', () => {
    expect(model.weights.gpuBytes).toBeLessThanOrEqual(1.05 * model.weights.fileBytes);
  });

  test(`distributions along llama.cpp's greedy path (${STEPS} steps)`, async () => {
    const run = oracleRuns.get(name)!;
    const prompt = prompts.get(name)!;
    expect(run.tokens.length).toBe(STEPS);
    const exact = spec.type === GGMLType.F32 || spec.type === GGMLType.F16;
    const ref = await RefModel.load(fixturePath(name), 96);
    let feed = prompt;
    let pos = 0;
    let worstLlama = 0;
    let worstRef = 0;
    const seq = model.runner.solo();
    for (let i = 0; i < STEPS; i++) {
      const logits = await seq.forwardLogits(feed, pos);
      const p = softmax(logits);
      worstLlama = Math.max(worstLlama, totalVariation(p, run.probs[i]!));
      if (exact) expect(argmax(p), `step ${i}`).toBe(run.tokens[i]);
      worstRef = Math.max(worstRef, totalVariation(p, softmax(ref.forward(feed, pos))));
      pos += feed.length;
      feed = [run.tokens[i]!];
    }
    seq.release();
    console.log(`${name}: max TV vs llama.cpp ${worstLlama.toExponential(2)}, vs exact reference ${worstRef.toExponential(2)}`);
    expect(worstLlama).toBeLessThanOrEqual(TV_LLAMA[spec.type]!);
    expect(worstRef).toBeLessThanOrEqual(TV_REF);
  });

  test(`greedy generation on the GPU sampler matches ${spec.type === GGMLType.F32 || spec.type === GGMLType.F16 ? 'llama.cpp' : 'the exact reference'} for ${STEPS} tokens`, async () => {
    const prompt = prompts.get(name)!;
    let expected: number[];
    if (spec.type === GGMLType.F32 || spec.type === GGMLType.F16) expected = oracleRuns.get(name)!.tokens;
    else {
      const ref = await RefModel.load(fixturePath(name), 96);
      expected = [];
      let feed = prompt;
      let pos = 0;
      for (let i = 0; i < STEPS; i++) {
        const t = argmax(ref.forward(feed, pos));
        expected.push(t);
        pos += feed.length;
        feed = [t];
      }
    }
    // generate() stops at end-of-generation; compare the prefix it produced.
    const r = await generate(model, { promptTokens: prompt, maxTokens: STEPS, temperature: 0 });
    expect(r.tokens).toEqual(expected.slice(0, r.tokens.length));
    if (r.finishReason === 'length') expect(r.tokens.length).toBe(STEPS);
    else expect(model.tokenizer.isEog(expected[r.tokens.length]!)).toBe(true);
  });

  test(`${BATCH_PROMPTS.length + 1} prompts generated together equal each alone${exactType(name) ? ' and llama.cpp' : ''}`, async () => {
    const texts = [PROMPT, ...BATCH_PROMPTS];
    const promptsOf = texts.map((t) => model.tokenizer.encode(t, { addBos: model.tokenizer.addBos }));
    const alone: GenerateResult[] = [];
    for (const p of promptsOf) alone.push(await generate(model, { promptTokens: p, maxTokens: BATCH_STEPS, temperature: 0 }));
    const before = model.scheduler.stats().maxSeqsInStep;
    const together = await Promise.all(promptsOf.map((p) => generate(model, { promptTokens: p, maxTokens: BATCH_STEPS, temperature: 0 })));
    expect(model.scheduler.stats().maxSeqsInStep).toBeGreaterThanOrEqual(Math.max(before, texts.length));
    together.forEach((r, i) => expect(r.tokens, texts[i]).toEqual(alone[i]!.tokens));
    const llama = batchRuns.get(name);
    if (llama)
      llama.forEach((l, i) => {
        const r = together[i + 1]!;
        expect(promptsOf[i + 1]).toEqual(l.prompt);
        expect(r.tokens, BATCH_PROMPTS[i]).toEqual(l.tokens.slice(0, r.tokens.length));
        if (r.finishReason === 'stop') expect(model.tokenizer.isEog(l.tokens[r.tokens.length]!)).toBe(true);
      });
  });
});

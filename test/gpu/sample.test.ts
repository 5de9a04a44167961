// GPU test of shaders/sample.wgsl (Sampler in src/kernels/sample.ts) against src/ref/sample.ts: exact
// tokens per (seed, counter), a chi-square check of the draws, top logprobs. To extend: add a config to a table.

import { beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_OUT_WORDS, Sampler, type SamplingParams } from '../../src/kernels/sample.js';
import { COPY_DST, COPY_SRC, STORAGE, storageBuffer, storageFrom } from '../../src/gpu/buffers.js';
import type { GpuContext, GpuTuning } from '../../src/gpu/device.js';
import { keptSet, logSoftmaxRef, sampleRef, topLogprobsRef } from '../../src/ref/sample.js';
import { expectClose, gpu, randn, readU32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

interface Draw {
  params: SamplingParams;
  counter: number;
}

/** Output rows per dispatch: each draw is one row of the batch, with its own settings and counter. */
const ROWS = 64;

/**
 * Runs the draws in dispatches of up to ROWS rows over copies of the same logits, as a batched
 * step samples its sequences. Returns [token, logprob] per draw.
 */
async function sampleAll(ctx: GpuContext, logits: Float32Array, draws: Draw[]): Promise<{ token: number; logprob: number }[]> {
  const V = logits.length;
  const rows = new Float32Array(ROWS * V);
  for (let r = 0; r < ROWS; r++) rows.set(logits, r * V);
  const logitsBuf = storageFrom(ctx.device, rows, 'logits');
  const outBuf = storageBuffer(ctx.device, ROWS * SAMPLE_OUT_WORDS * 4, 'sample.out');
  const results = ctx.device.createBuffer({ size: draws.length * SAMPLE_OUT_WORDS * 4, usage: STORAGE | COPY_SRC | COPY_DST });
  await validated(ctx, () => {
    const sampler = new Sampler(ctx, logitsBuf, outBuf, ROWS, V);
    for (let i0 = 0; i0 < draws.length; i0 += ROWS) {
      const chunk = draws.slice(i0, i0 + ROWS);
      sampler.setRows(chunk.map((d) => ({ sampling: d.params, counter: d.counter })));
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      sampler.encode(pass, chunk.length, false);
      pass.end();
      enc.copyBufferToBuffer(outBuf, 0, results, i0 * SAMPLE_OUT_WORDS * 4, chunk.length * SAMPLE_OUT_WORDS * 4);
      ctx.device.queue.submit([enc.finish()]);
    }
  });
  const raw = await readU32(ctx, results, SAMPLE_OUT_WORDS * draws.length);
  const f = new Float32Array(raw.buffer);
  return draws.map((_, i) => ({ token: raw[SAMPLE_OUT_WORDS * i]!, logprob: f[SAMPLE_OUT_WORDS * i + 1]! }));
}

function params(p: Partial<SamplingParams>): SamplingParams {
  return { temperature: 1, topK: 0, topP: 1, seed: 0, logprobs: 0, ...p };
}

/** Draws for several seeds x counters (counters include 0, large, and past 2^31). */
function grid(base: Partial<SamplingParams>, seeds: number, counters: number[]): Draw[] {
  const out: Draw[] = [];
  for (let s = 0; s < seeds; s++) {
    const p = params({ ...base, seed: 0x9e37 * (s + 1) + s });
    for (const counter of counters) out.push({ params: p, counter });
  }
  return out;
}

/** Every draw's token equals the reference's, except on floating-point knife edges (counted, few). */
async function expectSameTokens(logits: Float32Array, draws: Draw[]): Promise<void> {
  const ctx = await tunedGpu();
  const got = await sampleAll(ctx, logits, draws);
  // A draw within 1e-5 of a cumulative boundary (or a top-p mass within 1e-5 of its target) may go
  // either way in f32; those are skipped. With ~1e-3 spacing between boundaries this is rare.
  const EDGE = 1e-5;
  let skipped = 0;
  const lpGot: number[] = [];
  const lpWant: number[] = [];
  draws.forEach((d, i) => {
    const want = sampleRef(logits, d.params, d.counter);
    if (want.uMargin < EDGE || want.topPMargin < EDGE) {
      skipped++;
      return;
    }
    expect(got[i]!.token, `seed ${d.params.seed} counter ${d.counter} ${JSON.stringify(d.params)}`).toBe(want.token);
    lpGot.push(got[i]!.logprob);
    lpWant.push(want.logprob);
  });
  expect(skipped).toBeLessThanOrEqual(Math.ceil(draws.length / 50));
  expectClose(lpGot, lpWant, { maxNmse: TOL.transcendental });
}

// Every test runs under both sampler shapes: 256 threads a row (GPUs) and 4 (CPU-backed adapters, barrierFree).
let tuning: GpuTuning = TUNINGS[0]!;
async function tunedGpu(): Promise<GpuContext> {
  return withTuning(await gpu(), tuning);
}

const COUNTERS = [0, 1, 2, 77, 1000, 0x7fffffff, 0x80000005, 0xffffffff];

describe.each([false, true])('barrierFree %s', (barrierFree) => {
  beforeAll(() => {
    tuning = TUNINGS.find((t) => t.barrierFree === barrierFree && !t.matvecSubgroups)!;
  });

  describe('sample: exact tokens against the reference', () => {
    const V = 1000; // not a multiple of the 256-thread workgroup
    const logits = randn(rng(1), V, 2);

    it('greedy: argmax and its logprob', async () => {
      await expectSameTokens(logits, grid({ temperature: 0 }, 2, [0, 5]));
    });

    it('greedy picks the lowest index among tied maxima', async () => {
      const l = randn(rng(2), V, 1);
      l[700] = 9;
      l[301] = 9;
      l[999] = 9;
      const ctx = await tunedGpu();
      const got = await sampleAll(ctx, l, [{ params: params({ temperature: 0 }), counter: 3 }]);
      expect(got[0]!.token).toBe(301);
      expect(Math.abs(got[0]!.logprob - logSoftmaxRef(l)[301]!)).toBeLessThan(1e-5);
    });

    it('temperature only (T = 1 and T = 0.6)', async () => {
      await expectSameTokens(logits, [...grid({ temperature: 1 }, 8, COUNTERS), ...grid({ temperature: 0.6 }, 4, COUNTERS)]);
    });

    it('temperature + top-k', async () => {
      await expectSameTokens(logits, [...grid({ temperature: 0.8, topK: 40 }, 8, COUNTERS), ...grid({ temperature: 1.5, topK: 3 }, 4, COUNTERS)]);
    });

    it('temperature + top-p', async () => {
      await expectSameTokens(logits, [...grid({ temperature: 1.2, topP: 0.9 }, 8, COUNTERS), ...grid({ temperature: 0.5, topP: 0.3 }, 4, COUNTERS)]);
    });

    it('temperature + top-k + top-p', async () => {
      await expectSameTokens(logits, grid({ temperature: 0.9, topK: 50, topP: 0.8 }, 8, COUNTERS));
    });

    it('out-of-range settings mean off: topK >= V, topP >= 1 or <= 0', async () => {
      await expectSameTokens(logits, [
        ...grid({ temperature: 1, topK: V, topP: 1 }, 2, COUNTERS),
        ...grid({ temperature: 1, topK: V + 5, topP: 0 }, 2, COUNTERS),
      ]);
    });

    it('tiny vocabulary (most threads own no logits)', async () => {
      const l = new Float32Array([0.5, -1.25, 2, 1.5, 0.25]);
      await expectSameTokens(l, [
        ...grid({ temperature: 1 }, 6, COUNTERS),
        ...grid({ temperature: 0.7, topK: 2 }, 4, COUNTERS),
        ...grid({ temperature: 1, topP: 0.6 }, 4, COUNTERS),
      ]);
    });

    it('ties at the top-k and top-p thresholds are kept whole', async () => {
      // Logits on a coarse grid: many exact ties, including at the k-th largest value.
      const r = rng(3);
      const l = Float32Array.from({ length: 300 }, () => Math.round(r() * 12) / 2 - 3);
      const kth = Array.from(l).sort((a, b) => b - a)[6]!;
      const ties = l.filter((v) => v === kth).length;
      expect(ties).toBeGreaterThan(1);
      const k = keptSet(l, { temperature: 1, topK: 7, topP: 1 });
      expect(k.ids.length).toBeGreaterThan(7);
      await expectSameTokens(l, [...grid({ temperature: 1, topK: 7 }, 8, COUNTERS), ...grid({ temperature: 0.8, topK: 30, topP: 0.6 }, 8, COUNTERS)]);
    });

    it('-0 and +0 logits count as equal for top-k', async () => {
      const l = new Float32Array([-0, 1, 0, -2, 0, -0, -3]);
      // k = 3: the third largest is 0, so all four zeros (signed or not) survive with the 1.
      expect(keptSet(l, { temperature: 1, topK: 3, topP: 1 }).ids).toEqual([0, 1, 2, 4, 5]);
      await expectSameTokens(l, grid({ temperature: 1, topK: 3 }, 16, COUNTERS));
    });
  });

  describe('sample: a batch of rows', () => {
    it('each row samples its own logits with its own settings and counter, in one dispatch', async () => {
      const ctx = await tunedGpu();
      const V = 300;
      const rowsWanted: Draw[] = [
        { params: params({ temperature: 0 }), counter: 0 },
        { params: params({ temperature: 0.7, topK: 5, seed: 3 }), counter: 9 },
        { params: params({ temperature: 1, topP: 0.8, seed: 11 }), counter: 2 },
        { params: params({ temperature: 1.3, topK: 40, topP: 0.9, seed: 5 }), counter: 0x80000001 },
      ];
      const logits = rowsWanted.map((_, i) => randn(rng(100 + i), V, 2));
      const all = new Float32Array(rowsWanted.length * V);
      logits.forEach((l, i) => all.set(l, i * V));
      const logitsBuf = storageFrom(ctx.device, all, 'logits');
      const outBuf = storageBuffer(ctx.device, rowsWanted.length * SAMPLE_OUT_WORDS * 4, 'sample.out');
      await validated(ctx, () => {
        const sampler = new Sampler(ctx, logitsBuf, outBuf, rowsWanted.length, V);
        sampler.setRows(rowsWanted.map((d) => ({ sampling: d.params, counter: d.counter })));
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        sampler.encode(pass, rowsWanted.length, false);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      const out = await readU32(ctx, outBuf, rowsWanted.length * SAMPLE_OUT_WORDS);
      const got = rowsWanted.map((_, i) => out[i * SAMPLE_OUT_WORDS]!);
      const want = rowsWanted.map((d, i) => sampleRef(logits[i]!, d.params, d.counter).token);
      expect(got).toEqual(want);
    });
  });

  describe('sample: distribution', () => {
    it('2000 draws match softmax(logits / T) over the kept set (chi-square)', async () => {
      const ctx = await tunedGpu();
      const logits = new Float32Array([1.0, 2.5, 0.3, 2.0, -1.0, 1.7, 0.0, 2.2, -0.4, 1.1]);
      const p = params({ temperature: 0.8, topK: 7, topP: 0.95, seed: 12345 });
      const n = 2000;
      const draws = Array.from({ length: n }, (_, counter) => ({ params: p, counter }));
      const got = await sampleAll(ctx, logits, draws);
      const kept = keptSet(logits, p);
      expect(kept.topPMargin).toBeGreaterThan(1e-3);
      const z = kept.weights.reduce((a, b) => a + b, 0);
      const counts = new Map<number, number>();
      for (const g of got) counts.set(g.token, (counts.get(g.token) ?? 0) + 1);
      // Nothing outside the kept set is ever drawn.
      for (const t of counts.keys()) expect(kept.ids).toContain(t);
      let chi2 = 0;
      kept.ids.forEach((id, j) => {
        const e = (n * kept.weights[j]!) / z;
        chi2 += ((counts.get(id) ?? 0) - e) ** 2 / e;
      });
      // Top-k keeps 7, top-p then drops the 7th: 6 kept, df = 5. 25.74 is the 0.9999 quantile of
      // chi-square(5): generous, and the seeds are fixed, so the outcome is deterministic.
      expect(kept.ids).toEqual([0, 1, 3, 5, 7, 9]);
      expect(chi2, `chi2 ${chi2} counts ${JSON.stringify([...counts])}`).toBeLessThan(25.74);
    });
  });

  describe('top_logprobs', () => {
    async function topLogprobs(logits: Float32Array, k: number): Promise<Uint32Array> {
      const ctx = await tunedGpu();
      const logitsBuf = storageFrom(ctx.device, logits, 'logits');
      const outBuf = storageBuffer(ctx.device, SAMPLE_OUT_WORDS * 4, 'sample.out');
      await validated(ctx, () => {
        const sampler = new Sampler(ctx, logitsBuf, outBuf, 1, logits.length);
        sampler.setRows([{ sampling: params({ temperature: 0.7, topK: 5, seed: 1, logprobs: k }), counter: 4 }]);
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        sampler.encode(pass, 1, true);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      return readU32(ctx, outBuf, SAMPLE_OUT_WORDS);
    }

    for (const [V, k] of [
      [1000, 5],
      [1000, 32],
      [40, 40],
      [7, 3],
    ] as const) {
      it(`V ${V}, ${k} best, in order, untempered`, async () => {
        const logits = randn(rng(V + k), V, 2);
        logits[V - 1] = logits[0]!; // a tie, ordered by index
        const out = await topLogprobs(logits, k);
        const f = new Float32Array(out.buffer);
        const want = topLogprobsRef(logits, Math.min(k, 32));
        const ids = want.map((_, i) => out[2 + 2 * i]!);
        expect(ids).toEqual(want.map((w) => w.id));
        expectClose(
          want.map((_, i) => f[3 + 2 * i]!),
          want.map((w) => w.logprob),
          { maxNmse: TOL.transcendental },
        );
        // The sampled token rides along in the same output.
        const s = sampleRef(logits, params({ temperature: 0.7, topK: 5, seed: 1 }), 4);
        if (s.uMargin > 1e-5) expect(out[0]).toBe(s.token);
      });
    }
  });
});

// GPU test of shaders/matmul.wgsl (Matmul, GatherRows in src/kernels/matmul.ts) against src/ref/matmul.ts,
// for every weight type. To extend: a new type goes in TYPES (with its K list), a new shape in MS / NS.

import { describe, expect, it } from 'vitest';
import { GatherRows, Matmul, MATVEC_MAX_M, type GpuWeight } from '../../src/kernels/matmul.js';
import { StepUniform, storageBuffer, storageFrom } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { GGMLType } from '../../src/model/gguf.js';
import { gpuLayout, quantize, repackTensor } from '../../src/model/quant.js';
import { gatherRowsRef, matmulRef, type RefWeight } from '../../src/ref/matmul.js';
import { expectClose, gpu, randn, readF32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

// K-quants need K % 256 == 0; the 32-element types also run a K that is not a multiple of 64 or 256,
// and the float types one that is not a multiple of 32 (the kernels' ragged tail of 8-weight groups).
const TYPES: { name: string; type: GGMLType; Ks: number[] }[] = [
  { name: 'F32', type: GGMLType.F32, Ks: [96, 256, 512, 72] },
  { name: 'F16', type: GGMLType.F16, Ks: [96, 256, 512, 40] },
  { name: 'Q4_0', type: GGMLType.Q4_0, Ks: [96, 256, 512] },
  { name: 'Q8_0', type: GGMLType.Q8_0, Ks: [96, 256, 512] },
  { name: 'Q4_K', type: GGMLType.Q4_K, Ks: [256, 512] },
  { name: 'Q6_K', type: GGMLType.Q6_K, Ks: [256, 512] },
];
// On GPUs 1, 2, 3, 6 and 13 take the matvec path (buckets 1, 4, 8, 16), 64 and 67 the tiled one (67: a ragged second
// tile row); on CPU-backed adapters (barrier-free) 1 takes matvec_rows, the others matmul_rows with 2 (M = 2), 4
// (3: one token short) or 8 tokens a thread (6: a partial thread; 13, 67: a partial second one).
const MS = [1, 2, 3, 6, 13, 64, 67];
// Not multiples of 64: ragged last tile / workgroup rows (37: nor of the barrier-free kernels' 8 rows a thread).
const NS = [72, 37];

/** Seeded weight of N rows of K: GGUF bytes (for the reference) and the GPU-layout buffer (for the kernel). */
function makeWeight(ctx: GpuContext, type: GGMLType, N: number, K: number, seed: number): { ref: RefWeight; gpu: GpuWeight } {
  const values = randn(rng(seed), N * K);
  const bytes = quantize(type, values);
  const { scaleOffsetBytes } = gpuLayout(type, N * K);
  const buffer = storageFrom(ctx.device, repackTensor(type, bytes, N * K), 'w');
  return { ref: { type, bytes, K, N }, gpu: { buffer, type, K, N, scaleOffsetBytes } };
}

interface RunOpts {
  bias: boolean;
  accumulate: boolean;
  /** Rows in the step uniform when they differ from M (mFixed runs). */
  numTokens?: number;
  mFixed?: number;
}

/**
 * One matmul against the reference, under each adapter tuning (TUNINGS): on GPUs the matvec with
 * eight threads a row and a workgroup reduction, or a subgroup a row; prefill in workgroup tiles;
 * barrier-free (CPU-backed adapters), matvec_rows and matmul_rows.
 */
async function runMatmul(type: GGMLType, M: number, N: number, K: number, o: RunOpts, seed: number): Promise<void> {
  const base = await gpu();
  const r = rng(seed);
  const w = makeWeight(base, type, N, K, seed + 1);
  const x = randn(r, M * K);
  const bias = o.bias ? randn(r, N) : undefined;
  // Y's previous contents: added when accumulating, overwritten otherwise.
  const y0 = randn(r, M * N);
  const want = matmulRef(w.ref, x, M, { ...(bias ? { bias } : {}), ...(o.accumulate ? { accumulate: y0 } : {}) });
  const numTokens = o.numTokens ?? M;
  for (const tuning of TUNINGS) {
    const ctx: GpuContext = withTuning(base, tuning);
    const xBuf = storageFrom(ctx.device, x, 'x');
    const yBuf = storageFrom(ctx.device, y0, 'y');
    const biasBuf = bias ? storageFrom(ctx.device, bias, 'bias') : undefined;
    const step = new StepUniform(ctx.device);
    step.write(numTokens);
    await validated(ctx, () => {
      const k = new Matmul(ctx, w.gpu, xBuf, yBuf, step.buffer, {
        ...(biasBuf ? { bias: biasBuf } : {}),
        accumulate: o.accumulate,
        ...(o.mFixed !== undefined ? { mFixed: o.mFixed } : {}),
      });
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      k.encode(pass, numTokens);
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
    });
    const got = await readF32(ctx, yBuf, M * N);
    expectClose(got, want, { maxNmse: TOL.f32 });
  }
}

describe('matmul', () => {
  TYPES.forEach(({ name, type, Ks }, ti) => {
    describe(name, () => {
      Ks.forEach((K, ki) => {
        MS.forEach((M, mi) => {
          const N = NS[(ki + mi) % NS.length]!;
          // Rotate the epilogue so every type sees all four flag combinations on both paths.
          const f = (2 * ki + mi + ti) % 4;
          const o = { bias: (f & 1) !== 0, accumulate: (f & 2) !== 0 };
          const path = M <= MATVEC_MAX_M ? 'matvec (matvec_rows / matmul_rows when barrier-free)' : 'tiled';
          it(`${path} M ${M}, N ${N}, K ${K}${o.bias ? ', bias' : ''}${o.accumulate ? ', accumulate' : ''}`, () =>
            runMatmul(type, M, N, K, o, 1000 * ti + 100 * ki + mi));
        });
      });
    });
  });

  it('mFixed overrides the step token count (lm head over one normalized row)', () =>
    runMatmul(GGMLType.Q8_0, 1, 37, 256, { bias: false, accumulate: false, numTokens: 9, mFixed: 1 }, 7));
  it('mFixed selects the tiled path independently of the step', () =>
    runMatmul(GGMLType.Q4_K, 65, 72, 256, { bias: true, accumulate: false, numTokens: 1, mFixed: 65 }, 8));
  // More than 65535 rows: the matvec grid is split over x and y (a 128k-vocab lm head).
  it('matvec with N > 65535 rows (2-D grid)', () => runMatmul(GGMLType.Q8_0, 1, 65600, 32, { bias: false, accumulate: false }, 9));
});

describe('gather_rows', () => {
  TYPES.forEach(({ name, type, Ks }, ti) => {
    const K = Ks[0]!;
    it(`${name}, K ${K}`, async () => {
      const ctx = await gpu();
      const N = 37;
      const w = makeWeight(ctx, type, N, K, 500 + ti);
      // First, last, repeated and out-of-range ids (clamped to the last row).
      const ids = new Uint32Array([3, 0, 36, 3, 17, 1000]);
      const M = ids.length;
      const idBuf = storageFrom(ctx.device, ids, 'ids');
      const yBuf = storageBuffer(ctx.device, (M + 1) * K * 4, 'y');
      const step = new StepUniform(ctx.device);
      step.write(M);
      await validated(ctx, () => {
        const k = new GatherRows(ctx, w.gpu, idBuf, yBuf, step.buffer);
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        k.encode(pass, M);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      const got = await readF32(ctx, yBuf, (M + 1) * K);
      // Dequantization only: the same f32 products as the CPU (up to an FMA in Q4_K's d*q - m).
      expectClose(got.subarray(0, M * K), gatherRowsRef(w.ref, ids), { maxNmse: TOL.f32 });
      expect(got.subarray(M * K).every((v) => v === 0)).toBe(true);
    });
  });
});

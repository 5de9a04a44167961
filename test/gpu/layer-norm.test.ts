// GPU test of shaders/layer-norm.wgsl (LayerNorm in src/kernels/layer-norm.ts) against src/ref/layer-norm.ts.
// To extend: add a width / token count to CASES. Rows past the step's token count must stay untouched.

import { describe, expect, it } from 'vitest';
import { LayerNorm } from '../../src/kernels/layer-norm.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { layerNormRef } from '../../src/ref/layer-norm.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { expectClose, gpu, randn, readF32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

const CASES = [
  { M: 1, D: 8, eps: 1e-12 },
  { M: 3, D: 100, eps: 1e-5 },
  { M: 7, D: 257, eps: 1e-12 },
  { M: 2, D: 1024, eps: 1e-6 },
];

async function runWith(ctx: GpuContext, M: number, D: number, eps: number, scale: number, offset: number, seed: number, maxNmse: number): Promise<void> {
  const r = rng(seed);
  const cap = M + 1;
  const x = randn(r, cap * D, scale, offset);
  const w = randn(r, D, 0.2, 1);
  const b = randn(r, D, 0.3);
  const yBuf = storageFrom(ctx.device, new Float32Array(cap * D).fill(-7), 'y');
  const step = new StepUniform(ctx.device);
  step.write(M);
  await validated(ctx, () => {
    const k = new LayerNorm(ctx, storageFrom(ctx.device, x, 'x'), storageFrom(ctx.device, w, 'w'), storageFrom(ctx.device, b, 'b'), yBuf, step.buffer, D, eps);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.encode(pass, cap); // one row more than the step holds: the shader must guard on step.numTokens
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
  const got = await readF32(ctx, yBuf, cap * D);
  expectClose(got.subarray(0, M * D), layerNormRef(x, w, b, M, D, eps), { maxNmse });
  expect(got.subarray(M * D).every((v) => v === -7)).toBe(true);
}

async function run(M: number, D: number, eps: number, scale = 1, offset = 0, maxNmse: number = TOL.f32): Promise<void> {
  for (const tuning of TUNINGS) await runWith(withTuning(await gpu(), tuning), M, D, eps, scale, offset, M * 131 + D, maxNmse);
}

describe('layer-norm', () => {
  for (const { M, D, eps } of CASES) it(`[${M}, ${D}] eps ${eps}`, () => run(M, D, eps));
  // A large common offset (mean 300, spread 0.5): the f32 sum behind the mean errs by ~2⁻²⁴·300·√D ≈ 4e-4,
  // 7e-4 of the spread, so nmse up to ~5e-7 is rounding (measured 6e-10 .. 2e-8 on SwiftShader). A one-pass
  // E[x²] - E[x]² variance would cancel 90000 against 0.25 and miss by far more (nmse ~1e-2).
  it('rows with a large mean', () => run(4, 384, 1e-12, 0.5, 300, 1e-6));
  // Tiny activations: eps dominates the variance, so a misplaced eps shows up.
  it('eps matters for tiny rows', () => run(3, 64, 1e-5, 1e-3, 0, 5));
});

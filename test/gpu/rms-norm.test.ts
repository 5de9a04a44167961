// GPU test of shaders/rms-norm.wgsl (RmsNorm in src/kernels/rms-norm.ts) against src/ref/rms-norm.ts.
// To extend: add a width / token count to CASES; gather mode must write only rows 0 .. numOut - 1, from the listed rows.

import { describe, expect, it } from 'vitest';
import { RmsNorm } from '../../src/kernels/rms-norm.js';
import { StepUniform, storageBuffer, storageFrom } from '../../src/gpu/buffers.js';
import { rmsNormRef } from '../../src/ref/rms-norm.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { expectClose, gpu, randn, readF32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

const CASES = [
  { M: 1, D: 8, eps: 1e-5 },
  { M: 3, D: 100, eps: 1e-6 },
  { M: 5, D: 257, eps: 1e-5 },
  { M: 2, D: 2048, eps: 1e-6 },
];

async function run(M: number, D: number, eps: number, gather: number[] | undefined, scale: number, seed: number): Promise<void> {
  for (const tuning of TUNINGS) await runWith(withTuning(await gpu(), tuning), M, D, eps, gather, scale, seed);
}

async function runWith(ctx: GpuContext, M: number, D: number, eps: number, gather: number[] | undefined, scale: number, seed: number): Promise<void> {
  const r = rng(seed);
  const cap = M + 1;
  const x = randn(r, cap * D, scale);
  const w = randn(r, D);
  const xBuf = storageFrom(ctx.device, x, 'x');
  const wBuf = storageFrom(ctx.device, w, 'w');
  const sentinel = new Float32Array(cap * D).fill(-7);
  const yBuf = storageFrom(ctx.device, sentinel, 'y');
  const step = new StepUniform(ctx.device);
  step.write(M, gather?.length ?? 1);
  const rowIdx = gather ? storageFrom(ctx.device, new Uint32Array(gather), 'rowIdx') : undefined;
  await validated(ctx, () => {
    const k = new RmsNorm(ctx, xBuf, wBuf, yBuf, step.buffer, D, eps, rowIdx);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.encode(pass, gather ? gather.length : M);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
  const rows = gather ? gather.length : M;
  const got = await readF32(ctx, yBuf, cap * D);
  expectClose(got.subarray(0, rows * D), rmsNormRef(x, w, M, D, eps, gather), { maxNmse: TOL.f32 });
  expect(got.subarray(rows * D).every((v) => v === -7)).toBe(true);
}

describe('rms-norm', () => {
  for (const { M, D, eps } of CASES) {
    it(`[${M}, ${D}] eps ${eps}`, () => run(M, D, eps, undefined, 1, M * 131 + D));
    it(`[${M}, ${D}] gather the last row`, () => run(M, D, eps, [M - 1], 1, M * 137 + D));
  }
  // The lm head of a batched step: each sequence's last token, in any order.
  it('[5, 100] gather rows 4, 0, 2', () => run(5, 100, 1e-5, [4, 0, 2], 1, 77));
  // Tiny activations: eps dominates the mean square, so a misplaced eps shows up.
  it('eps matters for tiny rows', () => run(3, 64, 1e-5, undefined, 1e-3, 5));
  it('no overflow for large rows', () => run(2, 512, 1e-5, undefined, 1e15, 6));
});

describe('rms-norm buffers', () => {
  it('writes nothing for rows past numTokens in a larger buffer', async () => {
    const ctx = await gpu();
    const D = 16;
    const x = randn(rng(9), 4 * D);
    const xBuf = storageFrom(ctx.device, x, 'x');
    const wBuf = storageFrom(ctx.device, new Float32Array(D).fill(1), 'w');
    const yBuf = storageBuffer(ctx.device, 4 * D * 4, 'y');
    const step = new StepUniform(ctx.device);
    step.write(2);
    await validated(ctx, () => {
      const k = new RmsNorm(ctx, xBuf, wBuf, yBuf, step.buffer, D, 1e-5);
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      k.encode(pass, 4); // more workgroups than tokens: the shader must guard on step.numTokens
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
    });
    const got = await readF32(ctx, yBuf, 4 * D);
    expectClose(got.subarray(0, 2 * D), rmsNormRef(x, new Float32Array(D).fill(1), 2, D, 1e-5), { maxNmse: TOL.f32 });
    expect(got.subarray(2 * D).every((v) => v === 0)).toBe(true);
  });
});

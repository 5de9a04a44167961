// GPU test of shaders/pool.wgsl (Pool in src/kernels/pool.ts) against src/ref/pool.ts: mean / CLS / last
// pooling of the step's rows (never the rows past it), then L2 normalization.

import { describe, expect, it } from 'vitest';
import { Pool, type PoolMode } from '../../src/kernels/pool.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { poolRef } from '../../src/ref/pool.js';
import { expectClose, gpu, randn, readF32, rng, TOL, validated } from './helpers.js';

async function run(M: number, D: number, mode: PoolMode, x: Float32Array): Promise<Float32Array> {
  const ctx = await gpu();
  const yBuf = storageFrom(ctx.device, new Float32Array(D + 4).fill(-7), 'y');
  const step = new StepUniform(ctx.device);
  step.write(M);
  await validated(ctx, () => {
    const k = new Pool(ctx, storageFrom(ctx.device, x, 'x'), yBuf, step.buffer, D, mode);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.encode(pass);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
  const got = await readF32(ctx, yBuf, D + 4);
  expect(got.subarray(D).every((v) => v === -7)).toBe(true);
  return got.subarray(0, D);
}

describe('pool', () => {
  for (const mode of ['mean', 'cls', 'last'] as const) {
    for (const [M, D] of [
      [1, 8],
      [7, 100],
      [33, 384],
    ] as const) {
      it(`${mode} over [${M}, ${D}]`, async () => {
        // A row of large values past M: pooling must stop at the step's token count.
        const x = randn(rng(M * 3 + D), (M + 1) * D, 1, 0.3);
        x.fill(1000, M * D);
        const got = await run(M, D, mode, x);
        expectClose(got, poolRef(x, M, D, mode), { maxNmse: TOL.f32 });
        let norm = 0;
        for (const v of got) norm += v * v;
        expect(Math.abs(Math.sqrt(norm) - 1)).toBeLessThan(1e-5);
      });
    }
  }
  it('an all-zero row stays zero (no division by zero)', async () => {
    const got = await run(2, 16, 'mean', new Float32Array(3 * 16));
    expect([...got].every((v) => v === 0)).toBe(true);
  });
});

// GPU test of shaders/gelu.wgsl (Gelu in src/kernels/gelu.ts) against src/ref/gelu.ts, including the
// cut-offs at ±10 and values far outside them. Elements past numTokens × width must stay untouched.

import { describe, expect, it } from 'vitest';
import { Gelu } from '../../src/kernels/gelu.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { geluRef, geluScalar } from '../../src/ref/gelu.js';
import { expectClose, gpu, randn, readF32, rng, TOL, validated } from './helpers.js';

async function run(M: number, width: number, x: Float32Array): Promise<Float32Array> {
  const ctx = await gpu();
  const buf = storageFrom(ctx.device, x, 'y');
  const step = new StepUniform(ctx.device);
  step.write(M);
  await validated(ctx, () => {
    const k = new Gelu(ctx, buf, step.buffer, width);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.encode(pass, M);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
  return readF32(ctx, buf, x.length);
}

describe('gelu', () => {
  for (const [M, width, scale] of [
    [1, 8, 1],
    [5, 100, 3],
    [9, 1536, 2],
  ] as const) {
    it(`[${M}, ${width}] scale ${scale}`, async () => {
      const x = randn(rng(M * 7 + width), (M + 1) * width, scale);
      const got = await run(M, width, x);
      expectClose(got.subarray(0, M * width), geluRef(x.subarray(0, M * width)), { maxNmse: TOL.transcendental });
      expect(got.subarray(M * width)).toEqual(x.subarray(M * width));
    });
  }

  it('matches at the cut-offs and far outside them', async () => {
    const x = Float32Array.from([-1e30, -100, -10.5, -10, -9.99, -3, -0.5, 0, 0.5, 3, 9.99, 10, 10.5, 100, 1e30, 2]);
    const got = await run(1, x.length, x);
    for (let i = 0; i < x.length; i++) {
      const want = geluScalar(x[i]!);
      expect(Number.isFinite(got[i]!), `x = ${x[i]}`).toBe(true);
      expect(Math.abs(got[i]! - want), `x = ${x[i]}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
    }
  });
});

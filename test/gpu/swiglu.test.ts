// GPU test of shaders/swiglu.wgsl (SwiGlu in src/kernels/elementwise.ts) against src/ref/swiglu.ts.
// To extend: add a width / token count to CASES; rows past the step's token count must stay untouched.

import { describe, expect, it } from 'vitest';
import { SwiGlu } from '../../src/kernels/elementwise.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { swigluRef } from '../../src/ref/swiglu.js';
import { expectClose, gpu, randn, readF32, rng, TOL, validated } from './helpers.js';

const CASES = [
  { M: 1, FF: 11 },
  { M: 4, FF: 172 },
  { M: 3, FF: 1000 },
];

describe('swiglu', () => {
  for (const { M, FF } of CASES) {
    it(`silu(gate) * up over [${M}, ${FF}]`, async () => {
      const ctx = await gpu();
      const r = rng(77 * M + FF);
      const cap = M + 1;
      // Wide gate range so silu's saturating tails (exp overflow to inf for large -g) are exercised.
      const gate = randn(r, cap * FF, 6);
      const up = randn(r, cap * FF);
      const gBuf = storageFrom(ctx.device, gate, 'gate');
      const uBuf = storageFrom(ctx.device, up, 'up');
      const step = new StepUniform(ctx.device);
      step.write(M);
      await validated(ctx, () => {
        const k = new SwiGlu(ctx, gBuf, uBuf, step.buffer, FF);
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        k.encode(pass, M);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      const got = await readF32(ctx, gBuf, cap * FF);
      expectClose(got.subarray(0, M * FF), swigluRef(gate.subarray(0, M * FF), up.subarray(0, M * FF)), { maxNmse: TOL.transcendental });
      expect(Array.from(got.subarray(M * FF))).toEqual(Array.from(gate.subarray(M * FF)));
    });
  }

  it('saturates cleanly: silu(-100) = -0, silu(100) = 100', async () => {
    const ctx = await gpu();
    const gate = new Float32Array([-100, -30, 0, 30, 100, -1e30, 1e30, 0.5]);
    const up = new Float32Array([1, 1, 1, 1, 1, 1, 1, 2]);
    const gBuf = storageFrom(ctx.device, gate, 'gate');
    const uBuf = storageFrom(ctx.device, up, 'up');
    const step = new StepUniform(ctx.device);
    step.write(1);
    await validated(ctx, () => {
      const k = new SwiGlu(ctx, gBuf, uBuf, step.buffer, gate.length);
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      k.encode(pass, 1);
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
    });
    const got = await readF32(ctx, gBuf, gate.length);
    const want = swigluRef(gate, up);
    got.forEach((v, i) => {
      expect(Number.isFinite(v), `element ${i}: ${v}`).toBe(true);
      expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i]!)));
    });
  });
});

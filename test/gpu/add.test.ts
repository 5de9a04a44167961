// GPU test of shaders/add.wgsl (Add in src/kernels/elementwise.ts) against src/ref/add.ts.
// To extend: add a width / token count to CASES; rows past the step's token count must stay untouched.

import { describe, expect, it } from 'vitest';
import { Add } from '../../src/kernels/elementwise.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { addRef } from '../../src/ref/add.js';
import { expectClose, gpu, randn, readF32, rng, TOL, validated } from './helpers.js';

const CASES = [
  { M: 1, D: 7 },
  { M: 5, D: 96 },
  { M: 3, D: 1000 },
];

describe('add', () => {
  for (const { M, D } of CASES) {
    it(`Y += A over [${M}, ${D}], leaving rows past numTokens alone`, async () => {
      const ctx = await gpu();
      const r = rng(1000 * M + D);
      const cap = M + 2; // two rows past the step's tokens
      const y = randn(r, cap * D);
      const a = randn(r, cap * D);
      const yBuf = storageFrom(ctx.device, y, 'y');
      const aBuf = storageFrom(ctx.device, a, 'a');
      const step = new StepUniform(ctx.device);
      step.write(M);
      await validated(ctx, () => {
        const k = new Add(ctx, yBuf, aBuf, step.buffer, D);
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        k.encode(pass, M);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      const got = await readF32(ctx, yBuf, cap * D);
      // f32 addition of two f32 values is the float64 sum correctly rounded: exact up to one rounding.
      expectClose(got.subarray(0, M * D), addRef(y.subarray(0, M * D), a.subarray(0, M * D)), { maxNmse: TOL.f32 });
      expect(Array.from(got.subarray(M * D))).toEqual(Array.from(y.subarray(M * D)));
    });
  }
});

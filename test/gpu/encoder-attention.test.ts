// GPU test of shaders/encoder-attention.wgsl (EncoderAttention in src/kernels/encoder-attention.ts) against
// src/ref/encoder-attention.ts, every kernel variant (TUNINGS). To extend: add a shape to CASES.

import { describe, expect, it } from 'vitest';
import { EncoderAttention } from '../../src/kernels/encoder-attention.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { encoderAttentionRef } from '../../src/ref/encoder-attention.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { expectClose, gpu, randn, readF32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

const CASES = [
  { M: 1, H: 1, hd: 8 },
  { M: 3, H: 4, hd: 32 },
  { M: 13, H: 12, hd: 32 },
  { M: 70, H: 3, hd: 64 }, // more keys than one 64-key chunk
  { M: 130, H: 2, hd: 256 },
];

async function runWith(ctx: GpuContext, M: number, H: number, hd: number, seed: number): Promise<void> {
  const D = H * hd;
  const stride = 3 * D;
  const qkv = randn(rng(seed), (M + 2) * stride, 1.5);
  const cap = (M + 1) * D;
  const outBuf = storageFrom(ctx.device, new Float32Array(cap).fill(-7), 'out');
  const step = new StepUniform(ctx.device);
  step.write(M);
  await validated(ctx, () => {
    const k = new EncoderAttention(ctx, storageFrom(ctx.device, qkv, 'qkv'), outBuf, step.buffer, {
      numHeads: H,
      headDim: hd,
      qkvStride: stride,
      kOffset: D,
      vOffset: 2 * D,
    });
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.encode(pass, M);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
  const got = await readF32(ctx, outBuf, cap);
  const want = encoderAttentionRef(qkv, { M, numHeads: H, headDim: hd, stride, kOffset: D, vOffset: 2 * D });
  expectClose(got.subarray(0, M * D), want, { maxNmse: TOL.transcendental });
  expect(got.subarray(M * D).every((v) => v === -7)).toBe(true);
}

describe('encoder-attention', () => {
  for (const { M, H, hd } of CASES) {
    it(`${M} tokens, ${H} heads of ${hd}`, async () => {
      for (const tuning of TUNINGS) await runWith(withTuning(await gpu(), tuning), M, H, hd, M * 31 + H * 7 + hd);
    });
  }

  it('is bidirectional: the first token sees the last one', async () => {
    // Token 0's output depends on token M-1's value row; a causal kernel would return V[0] for token 0.
    const ctx = await gpu();
    const M = 5;
    const hd = 8;
    const qkv = new Float32Array(M * 3 * hd);
    for (let j = 0; j < M; j++) qkv[j * 3 * hd + 2 * hd] = j === M - 1 ? 100 : 0; // only the last V is non-zero
    const out = storageFrom(ctx.device, new Float32Array(M * hd), 'out');
    const step = new StepUniform(ctx.device);
    step.write(M);
    const k = new EncoderAttention(ctx, storageFrom(ctx.device, qkv, 'qkv'), out, step.buffer, {
      numHeads: 1,
      headDim: hd,
      qkvStride: 3 * hd,
      kOffset: hd,
      vOffset: 2 * hd,
    });
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    k.encode(pass, M);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
    const got = await readF32(ctx, out, M * hd);
    expect(got[0]).toBeCloseTo(100 / M, 4); // zero scores: uniform weights over all M keys
  });
});

// GPU test of shaders/attention.wgsl (Attention in src/kernels/attention.ts) against src/ref/attention.ts.
// To extend: add a shape to CASES (headDim <= 256); cache rows past the step are NaN so any read of them fails.

import { describe, expect, it } from 'vitest';
import { Attention } from '../../src/kernels/attention.js';
import { StepUniform, storageBuffer, storageFrom } from '../../src/gpu/buffers.js';
import { attentionRef } from '../../src/ref/attention.js';
import { expectClose, gpu, randn, readF32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

interface Case {
  M: number;
  startPos: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Spread of q and k: larger makes the softmax peakier. */
  scale: number;
}

const CASES: Case[] = [
  { M: 1, startPos: 0, numHeads: 1, numKvHeads: 1, headDim: 64, scale: 1 }, // a single key
  { M: 5, startPos: 0, numHeads: 3, numKvHeads: 3, headDim: 64, scale: 1.5 }, // MHA, odd heads, prefill from 0
  { M: 3, startPos: 70, numHeads: 4, numKvHeads: 2, headDim: 128, scale: 1 }, // GQA 2:1, prefill continuing a cache, 2 chunks
  { M: 1, startPos: 150, numHeads: 3, numKvHeads: 1, headDim: 80, scale: 2 }, // GQA 3:1, odd headDim, decode over 3 chunks
  { M: 67, startPos: 0, numHeads: 6, numKvHeads: 2, headDim: 64, scale: 1 }, // GQA 3:1 prefill: rows span 1..67 keys
  { M: 4, startPos: 61, numHeads: 2, numKvHeads: 1, headDim: 256, scale: 1 }, // max headDim, rows straddle the 64-key chunk edge
  { M: 2, startPos: 127, numHeads: 5, numKvHeads: 5, headDim: 48, scale: 3 }, // keys end exactly on / just past a chunk
];

describe('attention', () => {
  for (const c of CASES) {
    const { M, startPos, numHeads, numKvHeads, headDim } = c;
    it.each(TUNINGS)(`M ${M}, startPos ${startPos}, heads ${numHeads}/${numKvHeads}, headDim ${headDim}, barrierFree $barrierFree`, async (tuning) => {
      const ctx = withTuning(await gpu(), tuning);
      const r = rng(M * 7919 + startPos * 31 + numHeads * 7 + headDim);
      const seqLen = startPos + M;
      const maxPos = seqLen + 3; // cache capacity beyond the sequence
      const kvWidth = numKvHeads * headDim;
      const qWidth = numHeads * headDim;
      const q = randn(r, M * qWidth, c.scale);
      const k = randn(r, maxPos * kvWidth, c.scale);
      const v = randn(r, maxPos * kvWidth);
      k.fill(NaN, seqLen * kvWidth);
      v.fill(NaN, seqLen * kvWidth);
      const qBuf = storageFrom(ctx.device, q, 'q');
      const kBuf = storageFrom(ctx.device, k, 'k');
      const vBuf = storageFrom(ctx.device, v, 'v');
      const oBuf = storageBuffer(ctx.device, (M + 1) * qWidth * 4, 'o');
      const step = new StepUniform(ctx.device);
      step.write(M, startPos, 0);
      await validated(ctx, () => {
        const kern = new Attention(ctx, qBuf, kBuf, vBuf, oBuf, step.buffer, numHeads, numKvHeads, headDim);
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        kern.encode(pass, M);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      const got = await readF32(ctx, oBuf, (M + 1) * qWidth);
      const want = attentionRef(q, k, v, M, startPos, { numHeads, numKvHeads, headDim });
      expectClose(got.subarray(0, M * qWidth), want, { maxNmse: TOL.transcendental });
      expect(got.subarray(M * qWidth).every((x) => x === 0)).toBe(true);
    });
  }
});

// GPU test of shaders/rope.wgsl (Rope, ropeTable in src/kernels/rope.ts) against src/ref/rope.ts,
// whose angles are computed independently. To extend: add a configuration to CASES.

import { describe, expect, it } from 'vitest';
import { Rope, ropeTableBuffer, type RopeConfig } from '../../src/kernels/rope.js';
import { StepUniform, storageFrom } from '../../src/gpu/buffers.js';
import { ropeRef } from '../../src/ref/rope.js';
import { expectClose, gpu, randn, readF32, rng, TOL, validated } from './helpers.js';

interface Case {
  name: string;
  M: number;
  startPos: number;
  numHeads: number;
  headDim: number;
  cfg: RopeConfig;
}

function factors(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => 1 + 7 * r());
}

const CASES: Case[] = [
  { name: 'normal, full dim', M: 3, startPos: 0, numHeads: 2, headDim: 64, cfg: { ropeDim: 64, base: 10000, freqScale: 1, neox: false } },
  { name: 'neox, full dim', M: 3, startPos: 0, numHeads: 3, headDim: 64, cfg: { ropeDim: 64, base: 10000, freqScale: 1, neox: true } },
  { name: 'normal, startPos > 0', M: 5, startPos: 37, numHeads: 3, headDim: 32, cfg: { ropeDim: 32, base: 10000, freqScale: 1, neox: false } },
  { name: 'neox, startPos > 0, decode', M: 1, startPos: 1000, numHeads: 5, headDim: 128, cfg: { ropeDim: 128, base: 500000, freqScale: 1, neox: true } },
  { name: 'normal, ropeDim < headDim', M: 4, startPos: 9, numHeads: 2, headDim: 80, cfg: { ropeDim: 32, base: 10000, freqScale: 1, neox: false } },
  { name: 'neox, ropeDim < headDim', M: 4, startPos: 9, numHeads: 3, headDim: 80, cfg: { ropeDim: 40, base: 10000, freqScale: 1, neox: true } },
  {
    name: 'neox, freqFactors and linear scaling',
    M: 3,
    startPos: 200,
    numHeads: 2,
    headDim: 64,
    cfg: { ropeDim: 64, base: 500000, freqScale: 0.25, neox: true, freqFactors: factors(32, 3) },
  },
  {
    name: 'normal, freqFactors, ropeDim < headDim',
    M: 2,
    startPos: 77,
    numHeads: 1,
    headDim: 96,
    cfg: { ropeDim: 48, base: 10000, freqScale: 1, neox: false, freqFactors: factors(24, 4) },
  },
];

describe('rope', () => {
  for (const c of CASES) {
    it(`${c.name}: M ${c.M}, startPos ${c.startPos}, ${c.numHeads} heads x ${c.headDim}, ropeDim ${c.cfg.ropeDim}`, async () => {
      const ctx = await gpu();
      const r = rng(c.M * 1000 + c.startPos + c.headDim);
      const width = c.numHeads * c.headDim;
      const cap = c.M + 1; // one row past the step's tokens must stay untouched
      const x = randn(r, cap * width);
      const xBuf = storageFrom(ctx.device, x, 'x');
      const table = ropeTableBuffer(ctx, c.cfg, c.startPos + cap);
      const step = new StepUniform(ctx.device);
      step.write(c.M);
      // Each token's (RoPE position, sequence row, slot, mask): consecutive positions from startPos.
      const tokMeta = storageFrom(
        ctx.device,
        Uint32Array.from({ length: 4 * c.M }, (_, i) => (i % 4 === 0 || i % 4 === 2 ? c.startPos + Math.floor(i / 4) : i % 4 === 3 ? 0xffffffff : 0)),
        'tokMeta',
      );
      await validated(ctx, () => {
        const k = new Rope(ctx, xBuf, table, step.buffer, tokMeta, c.numHeads, c.headDim, c.cfg);
        const enc = ctx.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        k.encode(pass, c.M);
        pass.end();
        ctx.device.queue.submit([enc.finish()]);
      });
      const got = await readF32(ctx, xBuf, cap * width);
      const want = ropeRef(x.subarray(0, c.M * width), c.M, c.numHeads, c.headDim, c.cfg, c.startPos);
      // cos/sin are f32-rounded in the table, then one f32 multiply-add: rounding only.
      expectClose(got.subarray(0, c.M * width), want, { maxNmse: TOL.f32 });
      // Pass-through dims are bit-identical, and so is the row past numTokens.
      for (let m = 0; m < c.M; m++)
        for (let h = 0; h < c.numHeads; h++)
          for (let d = c.cfg.ropeDim; d < c.headDim; d++) {
            const i = (m * c.numHeads + h) * c.headDim + d;
            expect(got[i]).toBe(x[i]);
          }
      expect(Array.from(got.subarray(c.M * width))).toEqual(Array.from(x.subarray(c.M * width)));
    });
  }
});

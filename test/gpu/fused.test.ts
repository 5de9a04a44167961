// GPU tests of the fused forms the forward pass uses: RoPE + KV-cache store over a qkv row
// (rope_qkv), SwiGLU over a [gate | up] row, a matmul writing a column range of a wider row with
// a sliced bias, and attention reading Q from a wider row. References compose src/ref ops.

import { describe, expect, it } from 'vitest';
import { StepUniform, storageBuffer, storageFrom } from '../../src/gpu/buffers.js';
import { Attention } from '../../src/kernels/attention.js';
import { SwiGluSplit } from '../../src/kernels/elementwise.js';
import { Matmul } from '../../src/kernels/matmul.js';
import { RopeQkv, ropeTableBuffer, type RopeConfig } from '../../src/kernels/rope.js';
import { GGMLType } from '../../src/model/gguf.js';
import { gpuLayout, quantize, repackTensor } from '../../src/model/quant.js';
import { attentionRef } from '../../src/ref/attention.js';
import { matmulRef } from '../../src/ref/matmul.js';
import { ropeRef } from '../../src/ref/rope.js';
import { swigluRef } from '../../src/ref/swiglu.js';
import { expectClose, gpu, pagedStep, randn, readF32, rng, shuffledSeqs, TOL, TUNINGS, validated, withTuning } from './helpers.js';

function run(ctx: Awaited<ReturnType<typeof gpu>>, encode: (pass: GPUComputePassEncoder) => void): Promise<void> {
  return validated(ctx, () => {
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    encode(pass);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
}

describe('rope_qkv', () => {
  // Sequences (startPos, M) of one step, written through shuffled block tables.
  const cases: { seqs: [number, number][]; blockSize: number; H: number; KVH: number; HD: number; cfg: RopeConfig }[] = [
    { seqs: [[0, 3]], blockSize: 16, H: 4, KVH: 2, HD: 32, cfg: { ropeDim: 32, base: 10000, freqScale: 1, neox: false } },
    { seqs: [[41, 2]], blockSize: 8, H: 3, KVH: 1, HD: 64, cfg: { ropeDim: 64, base: 1e6, freqScale: 1, neox: true } },
    { seqs: [[7, 1]], blockSize: 4, H: 2, KVH: 2, HD: 48, cfg: { ropeDim: 32, base: 10000, freqScale: 0.5, neox: true } },
    {
      seqs: [
        [30, 1],
        [0, 5],
        [14, 3],
      ],
      blockSize: 4,
      H: 4,
      KVH: 2,
      HD: 32,
      cfg: { ropeDim: 32, base: 10000, freqScale: 1, neox: false },
    },
  ];
  for (const c of cases) {
    const name = c.seqs.map(([p, m]) => `${m}@${p}`).join(' + ');
    it(`${name}, block ${c.blockSize}, heads ${c.H}/${c.KVH}, headDim ${c.HD}, ropeDim ${c.cfg.ropeDim}, neox ${c.cfg.neox}`, async () => {
      const ctx = await gpu();
      const r = rng(c.seqs.length * 13 + c.seqs[0]![0]);
      const width = (c.H + 2 * c.KVH) * c.HD;
      const kvw = c.KVH * c.HD;
      const bs = c.blockSize;
      const { seqs, numBlocks, M } = shuffledSeqs(r, c.seqs, bs, 2);
      const maxPos = Math.max(...seqs.map((q) => q.startPos + q.M));
      const rows = numBlocks * bs;
      const qkv = randn(r, M * width);
      const kc0 = randn(r, rows * kvw);
      const vc0 = randn(r, rows * kvw);
      const qkvBuf = storageFrom(ctx.device, qkv, 'qkv');
      const kBuf = storageFrom(ctx.device, kc0, 'k');
      const vBuf = storageFrom(ctx.device, vc0, 'v');
      const table = ropeTableBuffer(ctx, c.cfg, maxPos);
      const step = new StepUniform(ctx.device);
      step.write(M);
      const { paging, tokens } = pagedStep(ctx, seqs, bs);
      await run(ctx, (p) => new RopeQkv(ctx, qkvBuf, table, step.buffer, kBuf, vBuf, c.H, c.KVH, c.HD, c.cfg, paging).encode(p, M));
      const got = await readF32(ctx, qkvBuf, M * width);
      const gotK = await readF32(ctx, kBuf, rows * kvw);
      const gotV = await readF32(ctx, vBuf, rows * kvw);
      const part = (m: number, from: number, n: number): Float32Array => qkv.subarray(m * width + from, m * width + from + n);
      const written = new Set<number>();
      tokens.forEach(({ pos, blocks }, m) => {
        const wantQ = ropeRef(part(m, 0, c.H * c.HD), 1, c.H, c.HD, c.cfg, pos);
        const wantK = ropeRef(part(m, c.H * c.HD, kvw), 1, c.KVH, c.HD, c.cfg, pos);
        expectClose(got.subarray(m * width, m * width + c.H * c.HD), wantQ, { maxNmse: TOL.f32 });
        // k and v parts of the qkv row are only read
        expect(Array.from(got.subarray(m * width + c.H * c.HD, (m + 1) * width))).toEqual(Array.from(part(m, c.H * c.HD, 2 * kvw)));
        const slot = blocks[Math.floor(pos / bs)]! * bs + (pos % bs);
        written.add(slot);
        expectClose(gotK.subarray(slot * kvw, (slot + 1) * kvw), wantK, { maxNmse: TOL.f32 });
        expect(Array.from(gotV.subarray(slot * kvw, (slot + 1) * kvw))).toEqual(Array.from(part(m, c.H * c.HD + kvw, kvw)));
      });
      // every other cache row is untouched
      const outside = (a: Float32Array, b: Float32Array): boolean => Array.from(a).every((v, i) => written.has(Math.floor(i / kvw)) || v === b[i]);
      expect(outside(gotK, kc0)).toBe(true);
      expect(outside(gotV, vc0)).toBe(true);
    });
  }
});

describe('swiglu_split', () => {
  it('[3, 2 x 100] gate | up rows', async () => {
    const ctx = await gpu();
    const M = 3;
    const FF = 100;
    const gu = randn(rng(3), M * 2 * FF, 3);
    const guBuf = storageFrom(ctx.device, gu, 'gu');
    const out = storageFrom(ctx.device, new Float32Array((M + 1) * FF).fill(-5), 'out');
    const step = new StepUniform(ctx.device);
    step.write(M);
    await run(ctx, (p) => new SwiGluSplit(ctx, guBuf, out, step.buffer, FF).encode(p, M));
    const got = await readF32(ctx, out, (M + 1) * FF);
    const g = new Float32Array(M * FF);
    const u = new Float32Array(M * FF);
    for (let m = 0; m < M; m++) {
      g.set(gu.subarray(m * 2 * FF, m * 2 * FF + FF), m * FF);
      u.set(gu.subarray(m * 2 * FF + FF, (m + 1) * 2 * FF), m * FF);
    }
    expectClose(got.subarray(0, M * FF), swigluRef(g, u), { maxNmse: TOL.transcendental });
    expect(got.subarray(M * FF).every((v) => v === -5)).toBe(true);
  });
});

describe('matmul into a column range', () => {
  it.each(TUNINGS)(
    'parts of a wider row with a concatenated bias (matvec and prefill), barrierFree $barrierFree, subgroups $matvecSubgroups',
    async (tuning) => {
      const ctx = withTuning(await gpu(), tuning);
      const K = 64;
      const widths = [40, 24];
      const stride = 64 + 8; // wider than the parts: the last 8 columns stay untouched
      for (const M of [2, 9]) {
        const r = rng(M);
        const x = randn(r, M * K);
        const bias = randn(r, stride);
        const y0 = new Float32Array(M * stride).fill(7);
        const yBuf = storageFrom(ctx.device, y0, 'y');
        const xBuf = storageFrom(ctx.device, x, 'x');
        const bBuf = storageFrom(ctx.device, bias, 'bias');
        const step = new StepUniform(ctx.device);
        step.write(M);
        const refs: Float64Array[] = [];
        let col = 0;
        const kernels: Matmul[] = [];
        for (const [i, N] of widths.entries()) {
          const type = i === 0 ? GGMLType.Q8_0 : GGMLType.F32;
          const wf = randn(r, N * K);
          const bytes = quantize(type, wf);
          const buf = storageFrom(ctx.device, repackTensor(type, bytes, N * K), 'w');
          kernels.push(
            new Matmul(ctx, { buffer: buf, type, K, N, scaleOffsetBytes: gpuLayout(type, N * K).scaleOffsetBytes }, xBuf, yBuf, step.buffer, {
              yStride: stride,
              yOffset: col,
              bias: bBuf,
            }),
          );
          refs.push(matmulRef({ type, bytes, K, N }, x, M, { bias: bias.slice(col, col + N) }));
          col += N;
        }
        await run(ctx, (p) => kernels.forEach((k) => k.encode(p, M)));
        const got = await readF32(ctx, yBuf, M * stride);
        for (let m = 0; m < M; m++) {
          let c0 = 0;
          widths.forEach((N, i) => {
            expectClose(got.subarray(m * stride + c0, m * stride + c0 + N), refs[i]!.subarray(m * N, (m + 1) * N), { maxNmse: TOL.f32 });
            c0 += N;
          });
          expect(Array.from(got.subarray(m * stride + c0, (m + 1) * stride))).toEqual(new Array(stride - c0).fill(7));
        }
      }
    },
  );
});

describe('attention reading Q from a qkv row', () => {
  it.each(TUNINGS)('qStride wider than the q heads, barrierFree $barrierFree', async (tuning) => {
    const ctx = withTuning(await gpu(), tuning);
    const [M, startPos, H, KVH, HD] = [3, 5, 4, 2, 32];
    const width = (H + 2 * KVH) * HD;
    const r = rng(11);
    const qkv = randn(r, M * width);
    const k = randn(r, (startPos + M) * KVH * HD);
    const v = randn(r, (startPos + M) * KVH * HD);
    const out = storageBuffer(ctx.device, M * H * HD * 4, 'o');
    const step = new StepUniform(ctx.device);
    step.write(M);
    const qkvBuf = storageFrom(ctx.device, qkv, 'qkv');
    const kBuf = storageFrom(ctx.device, k, 'k');
    const vBuf = storageFrom(ctx.device, v, 'v');
    // One block holding the whole sequence: the contiguous layout as a paged one.
    const { paging, tokens } = pagedStep(ctx, [{ startPos, M, blocks: [0] }], 8);
    await run(ctx, (p) => new Attention(ctx, qkvBuf, kBuf, vBuf, out, step.buffer, H, KVH, HD, paging, width).encode(p, M));
    const q = new Float32Array(M * H * HD);
    for (let m = 0; m < M; m++) q.set(qkv.subarray(m * width, m * width + H * HD), m * H * HD);
    expectClose(await readF32(ctx, out, M * H * HD), attentionRef(q, k, v, tokens, 8, { numHeads: H, numKvHeads: KVH, headDim: HD }), {
      maxNmse: TOL.transcendental,
    });
  });
});

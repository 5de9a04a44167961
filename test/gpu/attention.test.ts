// GPU test of shaders/attention.wgsl (Attention in src/kernels/attention.ts) against src/ref/attention.ts.
// A step holds several sequences, each a run of tokens at its own positions, reading the paged
// cache through a shuffled block table. To extend: add a case (headDim <= 256). Pool rows no
// table points at (and rows past each sequence's last position) are NaN, so any read of them fails.

import { describe, expect, it } from 'vitest';
import { Attention, attentionPartials, attentionSplits, type KvPaging } from '../../src/kernels/attention.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { StepUniform, storageBuffer, storageFrom } from '../../src/gpu/buffers.js';
import { attentionRef } from '../../src/ref/attention.js';
import { fullTree, type TreeShape } from '../../src/spec/tree.js';
import { expectClose, gpu, pagedStep, type PagedSeq, randn, readF32, rng, shuffledSeqs, TOL, TUNINGS, validated, withTuning } from './helpers.js';

/** K/V pools with random rows at every position the sequences hold and NaN everywhere else. */
function pools(
  r: () => number,
  seqs: readonly PagedSeq[],
  numBlocks: number,
  blockSize: number,
  kvWidth: number,
  scale: number,
): { k: Float32Array; v: Float32Array } {
  const k = new Float32Array(numBlocks * blockSize * kvWidth).fill(NaN);
  const v = new Float32Array(numBlocks * blockSize * kvWidth).fill(NaN);
  for (const s of seqs)
    for (let pos = 0; pos < s.startPos + s.M; pos++) {
      const row = s.blocks[Math.floor(pos / blockSize)]! * blockSize + (pos % blockSize);
      k.set(randn(r, kvWidth, scale), row * kvWidth);
      v.set(randn(r, kvWidth), row * kvWidth);
    }
  return { k, v };
}

/** The kernel over M tokens, its output read back with `rows` rows (rows past M must stay 0). */
async function attendGpu(
  ctx: GpuContext,
  x: { q: Float32Array; k: Float32Array; v: Float32Array },
  paging: KvPaging,
  shape: { numHeads: number; numKvHeads: number; headDim: number },
  M: number,
  rows: number,
): Promise<Float32Array> {
  const { numHeads, numKvHeads, headDim } = shape;
  const qBuf = storageFrom(ctx.device, x.q, 'q');
  const kBuf = storageFrom(ctx.device, x.k, 'k');
  const vBuf = storageFrom(ctx.device, x.v, 'v');
  const oBuf = storageBuffer(ctx.device, rows * numHeads * headDim * 4, 'o');
  const step = new StepUniform(ctx.device);
  step.write(M);
  await validated(ctx, () => {
    const kern = new Attention(ctx, qBuf, kBuf, vBuf, oBuf, step.buffer, numHeads, numKvHeads, headDim, paging);
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    kern.encode(pass, M);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
  return readF32(ctx, oBuf, rows * numHeads * headDim);
}

interface Case {
  /** (startPos, M) per sequence. */
  seqs: [startPos: number, M: number][];
  blockSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Spread of q and k: larger makes the softmax peakier. */
  scale: number;
}

const CASES: Case[] = [
  { seqs: [[0, 1]], blockSize: 16, numHeads: 1, numKvHeads: 1, headDim: 64, scale: 1 }, // a single key
  { seqs: [[0, 5]], blockSize: 4, numHeads: 3, numKvHeads: 3, headDim: 64, scale: 1.5 }, // MHA, odd heads, prefill over 2 blocks
  { seqs: [[70, 3]], blockSize: 16, numHeads: 4, numKvHeads: 2, headDim: 128, scale: 1 }, // GQA 2:1, prefill continuing a cache
  { seqs: [[150, 1]], blockSize: 32, numHeads: 3, numKvHeads: 1, headDim: 80, scale: 2 }, // GQA 3:1, odd headDim, decode over 5 blocks
  { seqs: [[0, 67]], blockSize: 16, numHeads: 6, numKvHeads: 2, headDim: 64, scale: 1 }, // prefill: rows span 1..67 keys
  { seqs: [[61, 4]], blockSize: 64, numHeads: 2, numKvHeads: 1, headDim: 256, scale: 1 }, // max headDim, rows straddle a block edge
  { seqs: [[127, 2]], blockSize: 1, numHeads: 5, numKvHeads: 5, headDim: 48, scale: 3 }, // one token per block
  { seqs: [[90, 2]], blockSize: 8, numHeads: 2, numKvHeads: 1, headDim: 42, scale: 1 }, // headDim not a multiple of 4: scalar key loads, split over 12 blocks
  // Continuous batching: decodes of different lengths and a prefill chunk in one step.
  {
    seqs: [
      [40, 1],
      [0, 9],
      [17, 1],
      [33, 6],
    ],
    blockSize: 8,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 64,
    scale: 1.5,
  },
  {
    seqs: [
      [200, 1],
      [5, 1],
      [90, 1],
    ],
    blockSize: 16,
    numHeads: 2,
    numKvHeads: 2,
    headDim: 32,
    scale: 1,
  },
];

describe('paged attention', () => {
  for (const c of CASES) {
    const { blockSize, numHeads, numKvHeads, headDim } = c;
    const name = c.seqs.map(([p, m]) => `${m}@${p}`).join(' + ');
    it.each(TUNINGS)(`${name}, block ${blockSize}, heads ${numHeads}/${numKvHeads}, headDim ${headDim}, barrierFree $barrierFree`, async (tuning) => {
      const ctx = withTuning(await gpu(), tuning);
      const r = rng(c.seqs.length * 7919 + c.seqs[0]![0] * 31 + numHeads * 7 + headDim + blockSize);
      const kvWidth = numKvHeads * headDim;
      const qWidth = numHeads * headDim;
      const { seqs, numBlocks, M } = shuffledSeqs(r, c.seqs, blockSize, 3); // 3 spare blocks nobody points at
      const { k, v } = pools(r, seqs, numBlocks, blockSize, kvWidth, c.scale);
      const q = randn(r, M * qWidth, c.scale);
      const { paging, tokens } = pagedStep(ctx, seqs, blockSize);
      const got = await attendGpu(ctx, { q, k, v }, paging, c, M, M + 1);
      const want = attentionRef(q, k, v, tokens, blockSize, { numHeads, numKvHeads, headDim });
      expectClose(got.subarray(0, M * qWidth), want, { maxNmse: TOL.transcendental });
      expect(got.subarray(M * qWidth).every((x) => x === 0)).toBe(true);
    });
  }
});

// Speculative token trees: every node's K/V is in the cache at its own slot (start + node), and a
// node may see only the context before the root and its own ancestors; a sibling branch's keys
// are real numbers here (not NaN), so only the mask keeps them out. A plain decode shares the step.
describe('tree attention mask', () => {
  const trees: [name: string, shape: TreeShape, start: number][] = [
    ['binary depth 2', fullTree(2, 2), 37],
    ['binary depth 4 (31 nodes) across the 32-key mask edge', fullTree(2, 4), 70],
    ['ternary depth 2 at the root of the cache', fullTree(3, 2), 0],
  ];
  for (const [name, shape, start] of trees)
    it.each(TUNINGS)(`${name}, barrierFree $barrierFree`, async (tuning) => {
      const ctx = withTuning(await gpu(), tuning);
      const r = rng(start * 131 + shape.parents.length);
      const [numHeads, numKvHeads, headDim, blockSize] = [4, 2, 32, 8];
      const kvWidth = numKvHeads * headDim;
      const qWidth = numHeads * headDim;
      const nodes = shape.parents.length;
      const { seqs, numBlocks } = shuffledSeqs(
        r,
        [
          [start, nodes],
          [19, 1],
        ],
        blockSize,
        2,
      );
      const { k, v } = pools(r, seqs, numBlocks, blockSize, kvWidth, 1.5);
      const M = nodes + 1;
      const { paging, tokens } = pagedStep(ctx, [{ ...seqs[0]!, tree: shape }, seqs[1]!], blockSize);
      const q = randn(r, M * qWidth, 1.5);
      const got = await attendGpu(ctx, { q, k, v }, paging, { numHeads, numKvHeads, headDim }, M, M);
      const want = attentionRef(q, k, v, tokens, blockSize, { numHeads, numKvHeads, headDim });
      expectClose(got, want, { maxNmse: TOL.transcendental });
      // The mask matters: plain causal attention over the slots differs for every non-chain node.
      const unmasked = attentionRef(
        q,
        k,
        v,
        tokens.map((t) => ({ ...t, mask: 0xffffffff })),
        blockSize,
        { numHeads, numKvHeads, headDim },
      );
      let diff = 0;
      for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i]! - unmasked[i]!));
      expect(diff).toBeGreaterThan(1e-3);
    });
});

// The forward pass gives every layer's Attention one split-K partials buffer (attentionPartials):
// two layers encoded back to back in one pass, each split (a decode step), each right on its own.
describe('split-K partials shared by the layers', () => {
  it('two attentions over different caches in one pass, one partials buffer', async () => {
    const ctx = withTuning(
      await gpu(),
      TUNINGS.find((t) => !t.barrierFree)!,
    );
    const [numHeads, numKvHeads, headDim, blockSize] = [4, 2, 64, 16];
    const shape = { numHeads, numKvHeads, headDim };
    const r = rng(4242);
    const { seqs, numBlocks, M } = shuffledSeqs(r, [[150, 1]], blockSize, 2);
    expect(attentionSplits(M, numHeads)).toBeGreaterThan(1);
    const { paging, tokens } = pagedStep(ctx, seqs, blockSize);
    const partials = attentionPartials(ctx, headDim)!;
    const layers = [0, 1].map(() => {
      const { k, v } = pools(r, seqs, numBlocks, blockSize, numKvHeads * headDim, 1);
      return { q: randn(r, M * numHeads * headDim), k, v };
    });
    const step = new StepUniform(ctx.device);
    step.write(M);
    const outs = layers.map(() => storageBuffer(ctx.device, M * numHeads * headDim * 4, 'o'));
    await validated(ctx, () => {
      const enc = ctx.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      layers.forEach((l, i) => {
        const [q, k, v] = [l.q, l.k, l.v].map((a) => storageFrom(ctx.device, a, 'in'));
        new Attention(ctx, q!, k!, v!, outs[i]!, step.buffer, numHeads, numKvHeads, headDim, paging, 0, partials).encode(pass, M);
      });
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
    });
    for (const [i, l] of layers.entries()) {
      const got = await readF32(ctx, outs[i]!, M * numHeads * headDim);
      expectClose(got, attentionRef(l.q, l.k, l.v, tokens, blockSize, shape), { maxNmse: TOL.transcendental });
    }
    partials.destroy();
  });
});

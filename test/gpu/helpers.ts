// Shared helpers for GPU kernel tests: one Dawn device per test file, seeded random data,
// validation-scoped execution and the single comparison helper with per-dtype tolerances.

import { expect } from 'vitest';
import { acquireNodeDevice } from '../../src/gpu/device-node.js';
import { mapRead, type GpuContext, type GpuTuning } from '../../src/gpu/device.js';
import { COPY_DST, MAP_READ, storageFrom } from '../../src/gpu/buffers.js';
import type { KvPaging } from '../../src/kernels/attention.js';
import type { RefToken } from '../../src/ref/attention.js';
import { nodeMeta, type TreeShape } from '../../src/spec/tree.js';

let ctxPromise: Promise<GpuContext> | null = null;
export function gpu(): Promise<GpuContext> {
  ctxPromise ??= acquireNodeDevice();
  return ctxPromise;
}

/** Tolerances (normalized MSE) written down once, with the reason. */
export const TOL = {
  // f32 accumulation in a different order than the float64 reference: rounding only. Quantized
  // matmuls use it too: their reference dequantizes the same bytes exactly, so only the f32 dot
  // products differ (measured on SwiftShader: <= 2e-13 at K = 512; gather_rows is bit-exact).
  f32: 1e-10,
  // exp/log in WGSL (SwiftShader's and real GPUs') are accurate to a few ulp, softmax sums amplify
  // slightly (measured: attention <= 2e-12, swiglu ~3e-15).
  transcendental: 1e-8,
} as const;

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: { maxNmse: number }): void {
  expect(actual.length).toBe(expected.length);
  let err = 0;
  let ref = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(a)) throw new Error(`non-finite value ${a} at ${i} (expected ${e})`);
    err += (a - e) ** 2;
    ref += e * e;
  }
  const nmse = err / Math.max(ref, 1e-30);
  expect(nmse, `nmse ${nmse}`).toBeLessThanOrEqual(opts.maxNmse);
}

/** Run `fn` inside a validation error scope and fail on any validation error. */
export async function validated<T>(ctx: GpuContext, fn: () => T | Promise<T>): Promise<T> {
  ctx.device.pushErrorScope('validation');
  const r = await fn();
  const err = await ctx.device.popErrorScope();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  return r;
}

/** The first `bytes` of `src` (a multiple of 4), through a staging buffer and the engine's own mapRead. */
async function readBack(ctx: GpuContext, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const staging = ctx.device.createBuffer({ size: Math.max(4, bytes), usage: MAP_READ | COPY_DST });
  const enc = ctx.device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
  ctx.device.queue.submit([enc.finish()]);
  try {
    await mapRead(ctx, staging);
    return staging.getMappedRange().slice(0, bytes);
  } finally {
    staging.destroy();
  }
}
export async function readF32(ctx: GpuContext, buf: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await readBack(ctx, buf, n * 4));
}
export async function readU32(ctx: GpuContext, buf: GPUBuffer, n: number): Promise<Uint32Array> {
  return new Uint32Array(await readBack(ctx, buf, n * 4));
}

export { randn, rng } from '../fixtures/random.js';

/**
 * The kernel variant sets: GPU without subgroups (workgroup reductions), CPU-backed adapter
 * without subgroups (barrier-free), and GPU with subgroups. SwiftShader picks barrier-free plus
 * subgroups by itself; tests run all three so no variant goes untested. subgroupMaxSize 0 means
 * "the adapter's own".
 */
export const TUNINGS: readonly GpuTuning[] = [
  { matvecSubgroups: false, subgroupMaxSize: 0, barrierFree: false },
  { matvecSubgroups: false, subgroupMaxSize: 0, barrierFree: true },
  { matvecSubgroups: true, subgroupMaxSize: 0, barrierFree: false },
];

export function withTuning(ctx: GpuContext, tuning: GpuTuning): GpuContext {
  if (tuning.matvecSubgroups && !ctx.features.subgroups) throw new Error('this adapter has no subgroups');
  return { ...ctx, tuning: { ...tuning, subgroupMaxSize: tuning.subgroupMaxSize || ctx.tuning.subgroupMaxSize } };
}

/** A step's sequences for the paged kernels: `M` tokens from `startPos`, with a block table. */
export interface PagedSeq {
  startPos: number;
  M: number;
  blocks: number[];
  /** The M tokens are the nodes of this token tree, its root at startPos (src/spec/tree.ts nodeMeta). */
  tree?: TreeShape;
}

/**
 * The per-token (RoPE position, sequence row, KV slot, attention mask) buffer and the block-table buffer of a step, plus the
 * reference's view of every token. Sequences are laid out in order, tokens contiguous.
 */
export function pagedStep(ctx: GpuContext, seqs: readonly PagedSeq[], blockSize: number): { paging: KvPaging; tokens: RefToken[] } {
  const blocksPerSeq = Math.max(...seqs.map((s) => s.blocks.length));
  const meta: number[] = [];
  const tokens: RefToken[] = [];
  seqs.forEach((s, r) => {
    for (let i = 0; i < s.M; i++) {
      const m = s.tree ? nodeMeta(s.tree, s.startPos, i) : { ropePos: s.startPos + i, slot: s.startPos + i, mask: 0xffffffff };
      meta.push(m.ropePos, r, m.slot, m.mask);
      tokens.push({ pos: m.ropePos, slot: m.slot, mask: m.mask, blocks: s.blocks });
    }
  });
  const tables = new Uint32Array(seqs.length * blocksPerSeq);
  seqs.forEach((s, r) => tables.set(s.blocks, r * blocksPerSeq));
  return {
    paging: {
      tokMeta: storageFrom(ctx.device, new Uint32Array(meta), 'tokMeta'),
      tables: storageFrom(ctx.device, tables, 'tables'),
      blockSize,
      blocksPerSeq,
    },
    tokens,
  };
}

/**
 * Sequences (startPos, M) with block tables drawn from a seeded shuffle of a pool that has `spare`
 * blocks nobody points at. Returns the sequences, the pool size and the step's token count.
 */
export function shuffledSeqs(
  r: () => number,
  specs: readonly [startPos: number, M: number][],
  blockSize: number,
  spare: number,
): { seqs: PagedSeq[]; numBlocks: number; M: number } {
  const need = specs.map(([p, m]) => Math.ceil((p + m) / blockSize));
  const numBlocks = need.reduce((a, b) => a + b, 0) + spare;
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  let at = 0;
  const seqs = specs.map(([startPos, M], i) => {
    const blocks = ids.slice(at, at + need[i]!);
    at += need[i]!;
    return { startPos, M, blocks };
  });
  return { seqs, numBlocks, M: seqs.reduce((a, q) => a + q.M, 0) };
}

// The semantic cache's GPU scan (shaders/cache-scan.wgsl through VectorIndex.searchAsync): its top-k equals
// brute force on seeded random unit vectors at ragged sizes, through appends, replacements and swap deletes.

import { describe, expect, test, vi } from 'vitest';
import { GpuScan } from '../../src/cache/gpu-scan.js';
import { GPU_SCAN_MIN_ROWS, VectorIndex, type IndexHit } from '../../src/cache/index.js';
import { LexicalEmbedder } from '../../src/cache/lexical.js';
import { SemanticCache, hashContext, samplingKey } from '../../src/cache/semantic-cache.js';
import { MemoryStore } from '../../src/cache/store.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { TOL, TUNINGS, expectClose, gpu, randn, rng, validated, withTuning } from './helpers.js';

function unit(r: () => number, dim: number): Float32Array {
  const v = randn(r, dim);
  let ss = 0;
  for (const x of v) ss += x * x;
  const inv = 1 / Math.sqrt(ss);
  return v.map((x) => x * inv);
}

/** Float64 brute force: every live vector scored, sorted best first (random data has no ties). */
function bruteForce(vecs: Map<string, Float32Array>, q: Float32Array, k: number): IndexHit[] {
  const all = [...vecs].map(([id, v]) => {
    let s = 0;
    for (let j = 0; j < q.length; j++) s += v[j]! * q[j]!;
    return { id, score: s };
  });
  all.sort((a, b) => b.score - a.score);
  return all.slice(0, k);
}

/** The ids must match exactly; scores are the same float64 sums in the same order, so they match to rounding of the order of terms. */
function expectSameHits(got: IndexHit[], want: IndexHit[]): void {
  expect(got.map((h) => h.id)).toEqual(want.map((h) => h.id));
  for (let i = 0; i < want.length; i++) expect(got[i]!.score).toBeCloseTo(want[i]!.score, 12);
}

const variants = (ctx: GpuContext): [string, GpuContext][] =>
  TUNINGS.filter((t) => !t.matvecSubgroups || ctx.features.subgroups).map((t) => [t.barrierFree ? 'score_rows' : 'score_split', withTuning(ctx, t)]);

describe('GpuScan', () => {
  test('every score equals the float64 dot product, both score entry points, ragged sizes', async () => {
    const ctx = await gpu();
    for (const [name, c] of variants(ctx))
      for (const [n, dim] of [
        [1, 4],
        [63, 12],
        [65, 384],
        [1000, 67],
      ] as const) {
        const r = rng(n * 31 + dim);
        const rows = new Float32Array(n * dim);
        for (let i = 0; i < n; i++) rows.set(unit(r, dim), i * dim);
        const q = unit(r, dim);
        const scan = new GpuScan(c, dim, n);
        const got = await validated(c, async () => {
          scan.write(0, rows);
          return scan.scoresOf(q, n);
        });
        scan.destroy();
        const want = new Float64Array(n);
        for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) want[i] = want[i]! + rows[i * dim + j]! * q[j]!;
        expectClose(got, want, { maxNmse: TOL.f32 });
        expect(name).toMatch(/score_/);
      }
  });

  test('the per-thread top-k lists contain the global top k', async () => {
    const ctx = await gpu();
    const dim = 32;
    for (const n of [5, 300, 4099]) {
      const r = rng(n);
      const rows = new Float32Array(n * dim);
      for (let i = 0; i < n; i++) rows.set(unit(r, dim), i * dim);
      const q = unit(r, dim);
      const scan = new GpuScan(ctx, dim, n);
      const cands = await validated(ctx, async () => {
        scan.write(0, rows);
        return scan.topK(q, n, 7);
      });
      const all = await scan.scoresOf(q, n);
      scan.destroy();
      const best = Array.from(all.keys())
        .sort((a, b) => all[b]! - all[a]!)
        .slice(0, Math.min(7, n));
      const candRows = new Set(cands.rows);
      for (const row of best) expect(candRows.has(row)).toBe(true);
      for (let i = 0; i < cands.rows.length; i++) expect(cands.scores[i]).toBe(all[cands.rows[i]!]);
    }
  });
});

describe('VectorIndex.searchAsync on the GPU', () => {
  for (const select of ['cpu', 'gpu'] as const)
    test(`equals brute force through appends, replacements and swap deletes (candidates selected on the ${select})`, async () => {
      const ctx = await gpu();
      for (const [name, c] of variants(ctx)) {
        const dim = 48;
        const r = rng(select === 'cpu' ? 7 : 8);
        // Capacity 3 so both the CPU array and the GPU buffer grow while the GPU copy exists.
        const index = new VectorIndex(dim, 3, { gpu: c, gpuMinRows: 1, gpuSelect: select });
        const vecs = new Map<string, Float32Array>();
        let next = 0;
        const check = async (): Promise<void> => {
          for (const k of [1, 5, 13]) {
            const q = unit(r, dim);
            const cpu = vi.spyOn(index, 'search');
            const got = await validated(c, () => index.searchAsync(q, k));
            expect(cpu, 'the GPU result was used, not the CPU fallback').not.toHaveBeenCalled();
            cpu.mockRestore();
            expectSameHits(got, bruteForce(vecs, q, k));
            expectSameHits(index.search(q, k), got);
          }
        };
        // Ragged sizes, growing past several capacities: 1, 2, 63, 64, 65, 257, 1000.
        for (const size of [1, 2, 63, 64, 65, 257, 1000]) {
          while (vecs.size < size) {
            const id = `v${next++}`;
            const v = unit(r, dim);
            vecs.set(id, v);
            index.add(id, v);
          }
          await check();
          expect(index.onGpu, name).toBe(true);
        }
        // Replace some vectors in place, then delete a third of the rows (each moves the last row into its hole).
        const ids = [...vecs.keys()];
        for (let i = 0; i < 50; i++) {
          const id = ids[Math.floor(r() * ids.length)]!;
          const v = unit(r, dim);
          vecs.set(id, v);
          index.add(id, v);
        }
        await check();
        for (const id of ids) {
          if (r() < 0.34) {
            expect(index.delete(id)).toBe(true);
            vecs.delete(id);
          }
        }
        expect(index.size).toBe(vecs.size);
        await check();
        // Appends after deletes land in the freed tail rows.
        for (let i = 0; i < 40; i++) {
          const id = `w${i}`;
          const v = unit(r, dim);
          vecs.set(id, v);
          index.add(id, v);
        }
        await check();
        index.destroy();
        expect(index.onGpu).toBe(false);
        await check(); // a new GPU copy is made from the CPU rows
      }
    });

  test('exact duplicates at the candidate boundary fall back to the CPU scan and still equal it', async () => {
    const ctx = await gpu();
    const dim = 16;
    const r = rng(3);
    const index = new VectorIndex(dim, 16, { gpu: ctx, gpuMinRows: 1 });
    const v = unit(r, dim);
    for (let i = 0; i < 40; i++) index.add(`dup${i}`, v);
    for (let i = 0; i < 40; i++) index.add(`rnd${i}`, unit(r, dim));
    const cpu = vi.spyOn(index, 'search');
    const got = await index.searchAsync(v, 5);
    expect(cpu).toHaveBeenCalledTimes(1);
    cpu.mockRestore();
    expect(got).toEqual(index.search(v, 5));
    expect(got.map((h) => h.id)).toEqual(['dup0', 'dup1', 'dup2', 'dup3', 'dup4']);
  });

  test('a change during the scan is not missed: the result reflects the rows at return', async () => {
    const ctx = await gpu();
    const dim = 8;
    const r = rng(5);
    const index = new VectorIndex(dim, 16, { gpu: ctx, gpuMinRows: 1 });
    for (let i = 0; i < 100; i++) index.add(`v${i}`, unit(r, dim));
    const q = unit(r, dim);
    const pending = index.searchAsync(q, 3);
    index.add('q', q); // added after the dispatch, before the readback
    const got = await pending;
    expect(got[0]!.id).toBe('q');
    expect(got).toEqual(index.search(q, 3));
  });

  test('below gpuMinRows and without a device, searchAsync is the CPU scan', async () => {
    const ctx = await gpu();
    const r = rng(9);
    const small = new VectorIndex(8, 16, { gpu: ctx, gpuMinRows: 50 });
    const plain = new VectorIndex(8);
    for (let i = 0; i < 20; i++) {
      const v = unit(r, 8);
      small.add(`v${i}`, v);
      plain.add(`v${i}`, v);
    }
    const q = unit(r, 8);
    expect(await small.searchAsync(q, 4)).toEqual(small.search(q, 4));
    expect(small.onGpu).toBe(false);
    expect(await plain.searchAsync(q, 4)).toEqual(plain.search(q, 4));
  });
});

describe('SemanticCache with a GPU', () => {
  test('hits and misses are the same as without one, with the scan on the GPU', async () => {
    // Marked as a hardware adapter so the default threshold is GPU_SCAN_MIN_ROWS (software adapters never scan on the GPU).
    const base = await gpu();
    const ctx: GpuContext = { ...base, adapter: { ...base.adapter, isFallback: false } };
    const embedder = new LexicalEmbedder({ dim: 256 });
    const key = { model: 'm', context: hashContext(['sys']), sampling: samplingKey({ temperature: 0 }) };
    const onGpu = await SemanticCache.create({ embedder, store: new MemoryStore(), gpu: ctx });
    const onCpu = await SemanticCache.create({ embedder, store: new MemoryStore() });
    // More entries in one group than GPU_SCAN_MIN_ROWS: distinct three-word queries.
    const words = [
      'reset',
      'password',
      'order',
      'track',
      'refund',
      'cancel',
      'ship',
      'invoice',
      'address',
      'email',
      'login',
      'card',
      'plan',
      'trial',
      'team',
      'phone',
      'backup',
      'device',
      'export',
      'report',
    ];
    const queries: string[] = [];
    for (const a of words) for (const b of words) for (const c of words) if (a !== b && b !== c && a !== c) queries.push(`how do i ${a} my ${b} ${c}`);
    queries.length = Math.min(queries.length, GPU_SCAN_MIN_ROWS + 100);
    expect(queries.length).toBe(GPU_SCAN_MIN_ROWS + 100);
    const scans = vi.spyOn(GpuScan.prototype, 'scoresOf');
    for (const q of queries) {
      await onGpu.insert(key, q, q);
      await onCpu.insert(key, q, q);
    }
    for (const q of [
      'How do I RESET my password, order?',
      'how do i track my refund card please',
      'hi how do i cancle my ship invoice',
      'what is the weather',
    ]) {
      const a = await onGpu.lookup<string>(key, q);
      const b = await onCpu.lookup<string>(key, q);
      expect(a?.entry.response ?? null).toBe(b?.entry.response ?? null);
      if (a && b) expect(a.similarity).toBeCloseTo(b.similarity, 12);
    }
    expect(scans).toHaveBeenCalledTimes(4);
    scans.mockRestore();
  });
});

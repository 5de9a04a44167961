// VectorIndex: top-k equals a brute-force sort, through growth and swap-with-last deletes.

import { describe, expect, it } from 'vitest';
import { VectorIndex } from '../../src/cache/index.js';
import { l2Normalize } from '../../src/cache/embedder.js';
import { randn, rng } from '../fixtures/random.js';
import { EngineError } from '../../src/api/errors.js';

function brute(vecs: Map<string, Float32Array>, q: Float32Array, k: number) {
  return [...vecs]
    .map(([id, v]) => ({ id, score: v.reduce((s, x, i) => s + x * q[i]!, 0) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

describe('VectorIndex', () => {
  it('top-k equals brute force through growth and deletions', () => {
    const r = rng(6);
    const dim = 37;
    const index = new VectorIndex(dim, 2);
    const vecs = new Map<string, Float32Array>();
    for (let i = 0; i < 300; i++) {
      const v = l2Normalize(randn(r, dim));
      index.add(`e${i}`, v);
      vecs.set(`e${i}`, v);
    }
    expect(index.capacity).toBe(512); // grown by doubling from 2
    for (let i = 0; i < 300; i += 3) {
      expect(index.delete(`e${i}`)).toBe(true);
      vecs.delete(`e${i}`);
    }
    expect(index.delete('e0')).toBe(false);
    // A replaced vector is the new one.
    const v7 = l2Normalize(randn(r, dim));
    index.add('e7', v7);
    vecs.set('e7', v7);
    expect(index.size).toBe(vecs.size);
    expect([...index.vector('e7')!]).toEqual([...v7]);
    for (let t = 0; t < 20; t++) {
      const q = l2Normalize(randn(r, dim));
      for (const k of [1, 5, 17]) {
        const got = index.search(q, k);
        const want = brute(vecs, q, k);
        expect(got.map((h) => h.id)).toEqual(want.map((h) => h.id));
        got.forEach((h, i) => expect(h.score).toBeCloseTo(want[i]!.score, 5));
      }
    }
    // A stored vector finds itself first with score 1.
    const self = index.search(vecs.get('e8')!, 1)[0]!;
    expect(self.id).toBe('e8');
    expect(self.score).toBeCloseTo(1, 5);
  });

  it('returns at most size hits, none when empty, and refuses a wrong dimension', () => {
    const index = new VectorIndex(4);
    expect(index.search(new Float32Array(4), 5)).toEqual([]);
    index.add('a', new Float32Array([1, 0, 0, 0]));
    index.add('b', new Float32Array([0, 1, 0, 0]));
    expect(index.search(new Float32Array([0.6, 0.8, 0, 0]), 5).map((h) => h.id)).toEqual(['b', 'a']);
    expect(() => index.add('c', new Float32Array(3))).toThrow(EngineError);
  });
});

// Unit tests of src/kv/block-pool.ts: allocation order, reference counts, the prefix cache's
// hashes and LRU, eviction, and that check() notices a broken pool.

import { describe, expect, it } from 'vitest';
import { BlockPool, blockHash } from '../../src/kv/block-pool.js';

describe('blockHash', () => {
  it('depends on the parent, every token and the length', () => {
    const a = blockHash('', [1, 2, 3, 4]);
    expect(blockHash('', [1, 2, 3, 4])).toBe(a);
    expect(blockHash('', [1, 2, 3, 5])).not.toBe(a);
    expect(blockHash('', [2, 1, 3, 4])).not.toBe(a);
    expect(blockHash(a, [1, 2, 3, 4])).not.toBe(a);
    expect(blockHash('', [1, 2, 3])).not.toBe(blockHash('', [1, 2, 3, 0]));
    // a range of a longer array hashes like the slice
    expect(blockHash('p', [9, 9, 1, 2, 3, 4, 9], 2, 6)).toBe(blockHash('p', [1, 2, 3, 4]));
    expect(a).toMatch(/^[0-9a-f]{16}$/);
  });

  it('has no collisions over 20,000 distinct short blocks', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20000; i++) seen.add(blockHash(String(i % 7), [i, i >>> 3, 17]));
    expect(seen.size).toBe(20000);
  });
});

describe('BlockPool', () => {
  it('hands out 0, 1, 2, ... and reuses a freed block first', () => {
    const p = new BlockPool(4, 16);
    expect([p.allocate(), p.allocate(), p.allocate()]).toEqual([0, 1, 2]);
    p.release(1);
    expect(p.allocate()).toBe(1);
    expect(p.allocate()).toBe(3);
    expect(p.allocate()).toBeNull();
    expect(p.stats()).toEqual({ free: 0, cached: 0, used: 4, evictions: 0 });
    p.check(
      new Map([
        [0, 1],
        [1, 1],
        [2, 1],
        [3, 1],
      ]),
    );
  });

  it('a sealed block survives its last release as a cache entry and can be retained again', () => {
    const p = new BlockPool(3, 4);
    const b = p.allocate()!;
    expect(p.seal(b, 'h0')).toBe(true);
    p.retain(b); // a second sequence shares it
    expect(p.refCount(b)).toBe(2);
    p.release(b);
    p.release(b);
    expect(p.stats()).toMatchObject({ free: 2, cached: 1, used: 0 });
    expect(p.lookup('h0')).toBe(b);
    p.retain(b);
    expect(p.stats()).toMatchObject({ cached: 0, used: 1 });
    expect(p.hashOfBlock(b)).toBe('h0');
    p.check(new Map([[b, 1]]));
  });

  it('evicts cached blocks least recently released first, only when no free block is left', () => {
    const p = new BlockPool(3, 4);
    const ids = [p.allocate()!, p.allocate()!, p.allocate()!];
    ids.forEach((id, i) => p.seal(id, `h${i}`));
    p.release(ids[1]!);
    p.release(ids[0]!);
    p.release(ids[2]!);
    // LRU order: 1, 0, 2
    expect(p.allocate()).toBe(ids[1]);
    expect(p.lookup('h1')).toBeNull();
    expect(p.lookup('h0')).toBe(ids[0]);
    expect(p.allocate()).toBe(ids[0]);
    expect(p.stats()).toMatchObject({ cached: 1, used: 2, evictions: 2 });
    p.check(
      new Map([
        [ids[1]!, 1],
        [ids[0]!, 1],
      ]),
    );
  });

  it('keeps the first block as the entry when two blocks hold the same content', () => {
    const p = new BlockPool(2, 4);
    const a = p.allocate()!;
    const b = p.allocate()!;
    expect(p.seal(a, 'same')).toBe(true);
    expect(p.seal(b, 'same')).toBe(false);
    expect(p.lookup('same')).toBe(a);
    p.release(b);
    expect(p.stats()).toMatchObject({ free: 1, used: 1 });
    p.check(new Map([[a, 1]]));
  });

  it('dropCached() empties the prefix cache and keeps blocks in use', () => {
    const p = new BlockPool(3, 4);
    const a = p.allocate()!;
    const b = p.allocate()!;
    p.seal(a, 'a');
    p.seal(b, 'b');
    p.release(a);
    expect(p.dropCached()).toBe(1);
    expect(p.lookup('a')).toBeNull();
    expect(p.lookup('b')).toBe(b);
    p.check(new Map([[b, 1]]));
  });

  it('check() reports references that do not match what sequences hold, and misuse is an internal error', () => {
    const p = new BlockPool(2, 4);
    const a = p.allocate()!;
    expect(() => p.check(new Map())).toThrow(/block 0 has 1 references; sequences hold 0/);
    p.release(a);
    expect(() => p.release(a)).toThrow(/released more often than retained/);
    expect(() => p.retain(a)).toThrow(/is free, not cached/);
    expect(() => p.release(7)).toThrow(/outside 0..1/);
  });
});

// The KV block pool's bookkeeping (pure TS; the GPU memory lives in model/forward.ts): which
// blocks are free, which are in use and by how many sequences, and which hold a full block of
// known tokens (a prefix-cache entry). Every block is in exactly one state:
//   free    refs 0, no hash         on the free stack
//   cached  refs 0, hash            in the LRU, findable by hash, evicted when the free stack is empty
//   used    refs > 0, hash or not   owned by sequences (shared read-only when hashed)
// check() verifies exactly that; tests call it after every step.

import { assert } from '../api/errors.js';

export type BlockId = number;

/** Content hash of a full block: its parent's hash (the blocks before it) and its token ids. */
export function blockHash(parent: string, tokens: ArrayLike<number>, from = 0, to = tokens.length): string {
  // Two independent 32-bit FNV-1a style lanes over the parent's characters and the token ids
  // (4 bytes each), printed as 16 hex digits: collisions need 2^32 blocks in one pool.
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x9e3779b9;
  const mix = (v: number): void => {
    h1 = Math.imul(h1 ^ (v & 0xff), 0x01000193);
    h1 = Math.imul(h1 ^ ((v >>> 8) & 0xff), 0x01000193);
    h1 = Math.imul(h1 ^ ((v >>> 16) & 0xff), 0x01000193);
    h1 = Math.imul(h1 ^ (v >>> 24), 0x01000193);
    h2 = Math.imul(h2 ^ v, 0x85ebca6b);
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = Math.imul(h2, 5) + 0xe6546b64;
  };
  for (let i = 0; i < parent.length; i++) mix(parent.charCodeAt(i));
  mix(0xffffffff); // separator: a parent's characters never run into the tokens
  for (let i = from; i < to; i++) mix(tokens[i]!);
  mix(to - from);
  const hex = (x: number): string => (x >>> 0).toString(16).padStart(8, '0');
  return hex(h1) + hex(h2);
}

export interface PoolStats {
  /** Blocks never used or freed without a hash. */
  free: number;
  /** Unreferenced blocks kept for their content (prefix cache), evictable. */
  cached: number;
  /** Blocks referenced by at least one sequence. */
  used: number;
  /** Cached blocks evicted to make room, since creation. */
  evictions: number;
}

export class BlockPool {
  private readonly refs: Int32Array;
  private readonly hashOf: (string | null)[];
  private readonly byHash = new Map<string, BlockId>();
  /** Free blocks; allocate() pops, so a fresh pool hands out 0, 1, 2, ... */
  private readonly freeStack: BlockId[];
  /** Cached blocks in least-recently-released order (Map keeps insertion order). */
  private readonly lru = new Map<BlockId, true>();
  private evictions = 0;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    assert(Number.isInteger(numBlocks) && numBlocks > 0, `numBlocks ${numBlocks}`);
    assert(Number.isInteger(blockSize) && blockSize > 0, `blockSize ${blockSize}`);
    this.refs = new Int32Array(numBlocks);
    this.hashOf = new Array<string | null>(numBlocks).fill(null);
    this.freeStack = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  /** Blocks allocate() can hand out now: free plus evictable cached blocks. */
  get available(): number {
    return this.freeStack.length + this.lru.size;
  }

  stats(): PoolStats {
    return { free: this.freeStack.length, cached: this.lru.size, used: this.numBlocks - this.freeStack.length - this.lru.size, evictions: this.evictions };
  }

  /** A block with one reference: a free one, else the least recently released cached one (its hash is forgotten). Null when every block is in use. */
  allocate(): BlockId | null {
    let id = this.freeStack.pop();
    if (id === undefined) {
      const oldest = this.lru.keys().next();
      if (oldest.done) return null;
      id = oldest.value;
      this.lru.delete(id);
      this.byHash.delete(this.hashOf[id]!);
      this.hashOf[id] = null;
      this.evictions++;
    }
    this.refs[id] = 1;
    return id;
  }

  /** Forget every cached block (the prefix cache empties; blocks in use keep their content). Returns how many. */
  dropCached(): number {
    const n = this.lru.size;
    for (const id of this.lru.keys()) {
      this.byHash.delete(this.hashOf[id]!);
      this.hashOf[id] = null;
      this.freeStack.push(id);
    }
    this.lru.clear();
    return n;
  }

  /** The block holding this content, if any (used or cached); does not take a reference. */
  lookup(hash: string): BlockId | null {
    return this.byHash.get(hash) ?? null;
  }

  /** Take a reference to a used or cached block (a cached one leaves the LRU). */
  retain(id: BlockId): void {
    this.checkId(id);
    if (this.refs[id] === 0) {
      assert(this.lru.delete(id), `block ${id} is free, not cached: it cannot be retained`);
    }
    this.refs[id]!++;
  }

  /** Drop a reference; at zero a hashed block becomes cached (most recently used), an unhashed one free. */
  release(id: BlockId): void {
    this.checkId(id);
    assert(this.refs[id]! > 0, `block ${id} released more often than retained`);
    if (--this.refs[id]! > 0) return;
    if (this.hashOf[id] !== null) this.lru.set(id, true);
    else this.freeStack.push(id);
  }

  /**
   * Record that a used block is full and holds the content `hash`. Returns false (and records
   * nothing) when another block already holds that content: the first one stays the cache entry.
   */
  seal(id: BlockId, hash: string): boolean {
    this.checkId(id);
    assert(this.refs[id]! > 0, `block ${id} is not in use: only a used block can be sealed`);
    if (this.hashOf[id] !== null) return this.hashOf[id] === hash;
    if (this.byHash.has(hash)) return false;
    this.hashOf[id] = hash;
    this.byHash.set(hash, id);
    return true;
  }

  refCount(id: BlockId): number {
    this.checkId(id);
    return this.refs[id]!;
  }

  hashOfBlock(id: BlockId): string | null {
    this.checkId(id);
    return this.hashOf[id]!;
  }

  /** Verify the invariants in the header; throws on the first broken one. `expectedRefs` (block → references sequences hold) must match exactly when given. */
  check(expectedRefs?: ReadonlyMap<BlockId, number>): void {
    const inFree = new Set(this.freeStack);
    assert(inFree.size === this.freeStack.length, 'a block is on the free stack twice');
    for (let id = 0; id < this.numBlocks; id++) {
      const r = this.refs[id]!;
      const h = this.hashOf[id]!;
      const states = Number(inFree.has(id)) + Number(this.lru.has(id)) + Number(r > 0);
      assert(states === 1, `block ${id} is in ${states} states (refs ${r}, free ${inFree.has(id)}, cached ${this.lru.has(id)})`);
      assert(r >= 0, `block ${id} has ${r} references`);
      if (inFree.has(id)) assert(h === null, `free block ${id} has a hash`);
      if (this.lru.has(id)) assert(h !== null, `cached block ${id} has no hash`);
      if (h !== null) assert(this.byHash.get(h) === id, `block ${id}'s hash maps elsewhere`);
      if (expectedRefs) assert((expectedRefs.get(id) ?? 0) === r, `block ${id} has ${r} references; sequences hold ${expectedRefs.get(id) ?? 0}`);
    }
    for (const [h, id] of this.byHash) assert(this.hashOf[id] === h, `hash ${h} maps to block ${id}, which holds ${this.hashOf[id]}`);
  }

  private checkId(id: BlockId): void {
    assert(Number.isInteger(id) && id >= 0 && id < this.numBlocks, `block id ${id} outside 0..${this.numBlocks - 1}`);
  }
}

// SemanticCache: answers a query with a stored response when a stored query under the same full key
// (embedder, model, context hash, sampling) is similar enough. Entries persist in a CacheStore; TTL, LRU under a byte budget.
// To change how entries are matched, change lookup(); the record format is versioned by RECORD_VERSION.

import { EngineError } from '../api/errors.js';
import type { GpuContext } from '../gpu/device.js';
import { Sha256 } from '../storage/model-store.js';
import type { Embedder } from './embedder.js';
import { VectorIndex } from './index.js';
import type { CacheStore } from './store.js';

/**
 * What an entry is stored under, besides the embedder. Entries are only ever compared with entries
 * of the same full key, so an answer given under one system prompt is never returned under another.
 */
export interface CacheKey {
  /** The model's id. */
  model: string;
  /** hashContext([systemPrompt, ...earlierTurns]): everything before the query that shapes the answer. */
  context: string;
  /** A canonical string of the sampling settings, e.g. samplingKey({ temperature, top_p, max_tokens }). */
  sampling: string;
}

/** One cached query and its response. */
export interface CacheEntry<R = unknown> {
  id: string;
  key: CacheKey;
  query: string;
  response: R;
  createdAtMs: number;
  /** null: never expires. */
  expiresAtMs: number | null;
  lastUsedAtMs: number;
  /** Estimated bytes: vector bytes + 2 × the UTF-16 length of every string (query, response JSON, key, id). */
  sizeBytes: number;
}

export interface CacheHit<R = unknown> {
  entry: CacheEntry<R>;
  /** Cosine similarity of the query and the stored query, ≥ the cache's threshold. */
  similarity: number;
}

export interface SemanticCacheOptions {
  embedder: Embedder;
  store: CacheStore;
  /** Minimum cosine similarity for a hit. Default: DEFAULT_THRESHOLDS for the embedder (required for others). */
  threshold?: number;
  /** Lifetime of an entry; Infinity keeps entries until evicted. Default 7 days. */
  ttlMs?: number;
  /** Budget for the entries' estimated bytes; least recently used entries go first. Default 64 MiB. */
  maxBytes?: number;
  /** Candidates taken from the index per lookup (the paper's k). Default 5. */
  k?: number;
  /** Clock, injectable for tests. Default Date.now. */
  now?: () => number;
  /** Errors from background writes (the LRU touch on a hit). Default: console.warn. */
  onError?: (e: unknown) => void;
  /** A device for the vector index: a group of defaultGpuMinRows(gpu) or more entries is scanned there (src/cache/index.ts). */
  gpu?: GpuContext;
}

/**
 * Calibrated hit thresholds per embedder id family (the id up to '-d<dim>'); change them here only.
 * lexical-v1: any query whose content words differ from the stored one's scores ≤ 0.5 by construction
 * (the whole-sequence feature carries half the norm); repeats with case, punctuation, filler or one typo
 * per word score ≥ 0.89 on the checks in test/unit/cache-lexical.test.ts. On the labeled set (bench/cache-data,
 * `hearth cache eval --sweep`) the highest wrong hit scores 0.727 and correct hits ≥ ~0.96: 0.8 sits in that gap
 * (precision 1.000, hit rate 0.439; see BENCHMARKS.md).
 */
export const DEFAULT_THRESHOLDS: Record<string, number> = {
  'lexical-v1': 0.8,
};

export function defaultThreshold(embedderId: string): number | undefined {
  return DEFAULT_THRESHOLDS[embedderId] ?? DEFAULT_THRESHOLDS[embedderId.replace(/-d\d+$/, '')];
}

const RECORD_VERSION = 1;
const DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/** The persisted form of an entry: plain JSON, the vector as base64 of its little-endian f32 bytes. */
interface StoredRecord {
  v: number;
  embedder: string;
  key: CacheKey;
  query: string;
  vector: string;
  response: unknown;
  createdAtMs: number;
  expiresAtMs: number | null;
  lastUsedAtMs: number;
}

/** Stable hex SHA-256 of a list of strings (length-prefixed, so ['ab','c'] ≠ ['a','bc']). */
export function hashContext(parts: readonly string[]): string {
  const h = new Sha256();
  const enc = new TextEncoder();
  for (const p of parts) {
    const b = enc.encode(p);
    h.update(enc.encode(`${b.byteLength}:`));
    h.update(b);
  }
  return h.hex();
}

/** Canonical JSON of sampling settings: keys sorted, undefined dropped, so equal settings give equal strings. */
export function samplingKey(settings: Record<string, unknown>): string {
  const keys = Object.keys(settings)
    .filter((k) => settings[k] !== undefined)
    .sort();
  return JSON.stringify(keys.map((k) => [k, settings[k]]));
}

function encodeVector(v: Float32Array): string {
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function decodeVector(s: string, dim: number): Float32Array | null {
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    return null;
  }
  if (bin.length !== dim * 4) return null;
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const v = new Float32Array(bytes.buffer);
  for (const x of v) if (!Number.isFinite(x)) return null;
  return v;
}

const isStr = (x: unknown): x is string => typeof x === 'string';
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function checkKey(key: CacheKey): void {
  if (!key || !isStr(key.model) || !isStr(key.context) || !isStr(key.sampling))
    throw new EngineError('BAD_REQUEST', 'A semantic cache key needs string fields model, context (hashContext of the prompt) and sampling.', {
      model: typeof key?.model,
      context: typeof key?.context,
      sampling: typeof key?.sampling,
    });
}

/**
 * A semantic cache over one embedder and one store.
 * @example
 *   const cache = await SemanticCache.create({ embedder: new LexicalEmbedder(), store: new MemoryStore() });
 *   const key = { model: 'm', context: hashContext(['You are terse.']), sampling: samplingKey({ temperature: 0 }) };
 *   await cache.insert(key, 'How do I reset my password?', { text: 'Open Settings.' });
 *   await cache.lookup(key, 'hi, how do i reset my pasword'); // → { entry, similarity: 0.96… }
 */
export class SemanticCache {
  readonly embedder: Embedder;
  readonly store: CacheStore;
  readonly threshold: number;
  readonly ttlMs: number;
  readonly maxBytes: number;
  readonly k: number;
  /** What create() found in the store. */
  readonly loadStats = { loaded: 0, corrupted: 0, expired: 0, otherEmbedder: 0, evicted: 0 };
  private readonly now: () => number;
  private readonly onError: (e: unknown) => void;
  private readonly gpu: GpuContext | undefined;
  /** Entries in LRU order: first = least recently used. */
  private readonly entries = new Map<string, { entry: CacheEntry; group: string; record: StoredRecord }>();
  private readonly groups = new Map<string, VectorIndex>();
  private bytes = 0;
  private writes: Promise<void> = Promise.resolve();
  private lastEmbedded: { query: string; vec: Float32Array } | null = null;

  private constructor(o: SemanticCacheOptions, threshold: number) {
    this.embedder = o.embedder;
    this.store = o.store;
    this.threshold = threshold;
    this.ttlMs = o.ttlMs ?? DEFAULT_TTL_MS;
    this.maxBytes = o.maxBytes ?? DEFAULT_MAX_BYTES;
    this.k = o.k ?? 5;
    this.now = o.now ?? Date.now;
    this.onError = o.onError ?? ((e) => console.warn('hearth: semantic cache write failed:', e));
    this.gpu = o.gpu;
  }

  /** Opens a cache over `store`: loads its entries, deleting corrupted and expired ones, evicting down to maxBytes. */
  static async create(o: SemanticCacheOptions): Promise<SemanticCache> {
    const threshold = o.threshold ?? defaultThreshold(o.embedder.id);
    if (threshold === undefined)
      throw new EngineError(
        'BAD_REQUEST',
        `No calibrated threshold for embedder '${o.embedder.id}'; pass threshold (the paper's reference value is 0.8; calibrate with hearth cache eval).`,
        { embedder: o.embedder.id },
      );
    if (!(threshold > -1 && threshold <= 1)) throw new EngineError('BAD_REQUEST', `threshold must be in (-1, 1], got ${threshold}.`, { threshold });
    if (o.ttlMs !== undefined && !(o.ttlMs > 0))
      throw new EngineError('BAD_REQUEST', `ttlMs must be > 0 (Infinity for no expiry), got ${o.ttlMs}.`, { ttlMs: o.ttlMs });
    if (o.maxBytes !== undefined && !(o.maxBytes > 0))
      throw new EngineError('BAD_REQUEST', `maxBytes must be > 0, got ${o.maxBytes}.`, { maxBytes: o.maxBytes });
    if (o.k !== undefined && !(Number.isInteger(o.k) && o.k >= 1)) throw new EngineError('BAD_REQUEST', `k must be an integer ≥ 1, got ${o.k}.`, { k: o.k });
    const cache = new SemanticCache(o, threshold);
    await cache.load();
    return cache;
  }

  /** Number of entries. */
  get size(): number {
    return this.entries.size;
  }

  /** Estimated bytes of all entries (≤ maxBytes). */
  get sizeBytes(): number {
    return this.bytes;
  }

  /**
   * The most similar live entry under `key` with similarity ≥ threshold, or null. A hit becomes the
   * most recently used entry; expired candidates are removed.
   */
  async lookup<R = unknown>(key: CacheKey, query: string): Promise<CacheHit<R> | null> {
    checkKey(key);
    const index = this.groups.get(this.groupOf(key));
    if (!index || index.size === 0) return null;
    const vec = await this.embed(query);
    for (;;) {
      // The index scores are exact dot products of unit vectors (= cosine), so no re-score is needed.
      const cands = await index.searchAsync(vec, this.k);
      const now = this.now();
      let removed = false;
      for (const c of cands) {
        const e = this.entries.get(c.id);
        if (!e) continue; // removed while the GPU scan ran
        if (e.entry.expiresAtMs !== null && e.entry.expiresAtMs <= now) {
          await this.remove(c.id);
          removed = true;
          continue;
        }
        if (c.score < this.threshold) return null;
        this.touch(c.id, now);
        return { entry: { ...e.entry } as CacheEntry<R>, similarity: c.score };
      }
      if (!removed) return null;
    }
  }

  /**
   * Stores `response` (JSON-serializable) for `query` under `key`, replacing an entry for the same
   * query; evicts least recently used entries to stay within maxBytes. Resolves once the store has it.
   * Returns null when the entry alone is over maxBytes (nothing is stored).
   */
  async insert<R>(key: CacheKey, query: string, response: R, opts: { ttlMs?: number } = {}): Promise<CacheEntry<R> | null> {
    checkKey(key);
    if (!isStr(query)) throw new EngineError('BAD_REQUEST', 'The query to cache must be a string.', { query: typeof query });
    const ttlMs = opts.ttlMs ?? this.ttlMs;
    if (!(ttlMs > 0)) throw new EngineError('BAD_REQUEST', `ttlMs must be > 0, got ${ttlMs}.`, { ttlMs });
    const responseJson = JSON.stringify(response);
    if (responseJson === undefined) throw new EngineError('BAD_REQUEST', 'The response to cache must be JSON-serializable.', {});
    const vec = await this.embed(query);
    const now = this.now();
    const record: StoredRecord = {
      v: RECORD_VERSION,
      embedder: this.embedder.id,
      key: { model: key.model, context: key.context, sampling: key.sampling },
      query,
      vector: encodeVector(vec),
      response: JSON.parse(responseJson) as unknown,
      createdAtMs: now,
      expiresAtMs: Number.isFinite(ttlMs) ? now + ttlMs : null,
      lastUsedAtMs: now,
    };
    const id = this.idOf(record.key, query);
    const entry = this.toEntry(id, record, responseJson);
    if (entry.sizeBytes > this.maxBytes) return null;
    if (this.entries.has(id)) this.forget(id);
    this.add(id, record, entry, vec);
    const evicted = this.evictToBudget(id);
    await this.store.set(id, record);
    await Promise.all(evicted.map((x) => this.store.delete(x)));
    return { ...entry } as CacheEntry<R>;
  }

  /** Removes one entry. */
  async delete(id: string): Promise<boolean> {
    if (!this.entries.has(id)) return false;
    await this.remove(id);
    return true;
  }

  /** Removes every expired entry; returns how many. */
  async prune(): Promise<number> {
    const now = this.now();
    const dead = [...this.entries.values()].filter((e) => e.entry.expiresAtMs !== null && e.entry.expiresAtMs <= now).map((e) => e.entry.id);
    for (const id of dead) await this.remove(id);
    return dead.length;
  }

  /** Every entry, least recently used first. */
  list(): CacheEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e.entry }));
  }

  /** Waits for background writes (LRU touches) to reach the store. */
  flush(): Promise<void> {
    return this.writes;
  }

  private groupOf(key: CacheKey): string {
    return JSON.stringify([this.embedder.id, key.model, key.context, key.sampling]);
  }

  private idOf(key: CacheKey, query: string): string {
    return hashContext([this.embedder.id, key.model, key.context, key.sampling, query]);
  }

  private toEntry(id: string, r: StoredRecord, responseJson: string): CacheEntry {
    const strings = r.query.length + responseJson.length + r.key.model.length + r.key.context.length + r.key.sampling.length + id.length;
    return {
      id,
      key: r.key,
      query: r.query,
      response: r.response,
      createdAtMs: r.createdAtMs,
      expiresAtMs: r.expiresAtMs,
      lastUsedAtMs: r.lastUsedAtMs,
      sizeBytes: this.embedder.dim * 4 + 2 * strings,
    };
  }

  private async embed(query: string): Promise<Float32Array> {
    // lookup() then insert() of the same query (a miss) embeds once.
    if (this.lastEmbedded?.query === query) return this.lastEmbedded.vec;
    const [vec] = await this.embedder.embed([query]);
    if (!vec || vec.length !== this.embedder.dim)
      throw new EngineError('BAD_REQUEST', `Embedder ${this.embedder.id} returned a vector of length ${vec?.length ?? 0}, expected ${this.embedder.dim}.`, {
        embedder: this.embedder.id,
        length: vec?.length ?? 0,
        dim: this.embedder.dim,
      });
    this.lastEmbedded = { query, vec };
    return vec;
  }

  private add(id: string, record: StoredRecord, entry: CacheEntry, vec: Float32Array): void {
    const group = this.groupOf(record.key);
    let index = this.groups.get(group);
    if (!index) this.groups.set(group, (index = new VectorIndex(this.embedder.dim, 16, { gpu: this.gpu })));
    index.add(id, vec);
    this.entries.set(id, { entry, group, record });
    this.bytes += entry.sizeBytes;
  }

  /** Drops an entry from memory only. */
  private forget(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.bytes -= e.entry.sizeBytes;
    const index = this.groups.get(e.group)!;
    index.delete(id);
    if (index.size === 0) this.groups.delete(e.group);
  }

  private async remove(id: string): Promise<void> {
    this.forget(id);
    await this.store.delete(id);
  }

  /** Forgets least recently used entries (never `keep`) until within budget; returns their ids for the store. */
  private evictToBudget(keep?: string): string[] {
    const out: string[] = [];
    let bytes = this.bytes;
    for (const [id, e] of this.entries) {
      if (bytes <= this.maxBytes) break;
      if (id === keep) continue;
      out.push(id);
      bytes -= e.entry.sizeBytes;
    }
    for (const id of out) this.forget(id);
    return out;
  }

  private touch(id: string, now: number): void {
    const e = this.entries.get(id)!;
    this.entries.delete(id);
    this.entries.set(id, e); // to the most recently used end
    e.entry.lastUsedAtMs = now;
    e.record.lastUsedAtMs = now;
    const record = { ...e.record };
    this.writes = this.writes.then(() => this.store.set(id, record)).catch((err: unknown) => this.onError(err));
  }

  private async load(): Promise<void> {
    const now = this.now();
    const dead: string[] = [];
    const good: { id: string; record: StoredRecord; vec: Float32Array; json: string }[] = [];
    for (const [id, value] of await this.store.entries()) {
      const r = this.validate(value);
      if (r === 'other') {
        this.loadStats.otherEmbedder++; // another embedder's entry: not ours to judge or delete
      } else if (!r || this.idOf(r.record.key, r.record.query) !== id) {
        this.loadStats.corrupted++;
        dead.push(id);
      } else if (r.record.expiresAtMs !== null && r.record.expiresAtMs <= now) {
        this.loadStats.expired++;
        dead.push(id);
      } else good.push({ id, ...r });
    }
    good.sort((a, b) => a.record.lastUsedAtMs - b.record.lastUsedAtMs);
    for (const g of good) this.add(g.id, g.record, this.toEntry(g.id, g.record, g.json), g.vec);
    const evicted = this.evictToBudget();
    this.loadStats.loaded = this.entries.size;
    this.loadStats.evicted = evicted.length;
    for (const id of [...dead, ...evicted]) await this.store.delete(id);
  }

  /** A stored value → a record of this embedder, 'other' (another embedder's), or null (corrupted). */
  private validate(value: unknown): { record: StoredRecord; vec: Float32Array; json: string } | 'other' | null {
    if (typeof value !== 'object' || value === null) return null;
    const r = value as Partial<StoredRecord>;
    if (r.v !== RECORD_VERSION || !isStr(r.embedder)) return null;
    if (r.embedder !== this.embedder.id) return 'other';
    const k = r.key;
    if (typeof k !== 'object' || k === null || !isStr(k.model) || !isStr(k.context) || !isStr(k.sampling)) return null;
    if (!isStr(r.query) || !isStr(r.vector) || !isNum(r.createdAtMs) || !isNum(r.lastUsedAtMs)) return null;
    if (r.expiresAtMs !== null && !isNum(r.expiresAtMs)) return null;
    if (!('response' in r)) return null;
    const json = JSON.stringify(r.response);
    if (json === undefined) return null;
    const vec = decodeVector(r.vector, this.embedder.dim);
    if (!vec) return null;
    return { record: r as StoredRecord, vec, json };
  }
}

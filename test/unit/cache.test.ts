// SemanticCache over its stores: hits and misses, context isolation, TTL, LRU eviction under the byte budget,
// corrupted entries, persistence through MemoryStore and FileStore, concurrent inserts, IndexedDB quota degrading to memory.

import { mkdtempSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LexicalEmbedder } from '../../src/cache/lexical.js';
import { SemanticCache, hashContext, samplingKey, DEFAULT_THRESHOLDS, type CacheKey } from '../../src/cache/semantic-cache.js';
import { MemoryStore } from '../../src/cache/store.js';
import { FileStore } from '../../src/cache/store-file.js';
import { IdbStore, type IdbKeyvalApi } from '../../src/cache/store-idb.js';
import { EngineError } from '../../src/api/errors.js';

const embedder = new LexicalEmbedder();
const key = (system = 'You are a helpful support agent.', sampling = samplingKey({ temperature: 0 })): CacheKey => ({
  model: 'tiny-llama',
  context: hashContext([system]),
  sampling,
});
const answer = (text: string) => ({ text, completionTokens: 7, finishReason: 'stop' });

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'hearth-cache-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('SemanticCache', () => {
  it('answers a repeat with the stored response and its similarity, and misses a near-miss', async () => {
    const cache = await SemanticCache.create({ embedder, store: new MemoryStore() });
    expect(cache.threshold).toBe(DEFAULT_THRESHOLDS['lexical-v1']);
    expect(await cache.lookup(key(), 'How do I reset my password?')).toBeNull();
    await cache.insert(key(), 'How do I reset my password?', answer('Open Settings › Security.'));
    const hit = await cache.lookup(key(), 'hi, how do i reset my pasword please');
    expect(hit?.entry.response).toEqual(answer('Open Settings › Security.'));
    expect(hit?.entry.query).toBe('How do I reset my password?');
    expect(hit!.similarity).toBeGreaterThanOrEqual(cache.threshold);
    expect(hit!.similarity).toBeLessThan(1);
    expect(await cache.lookup(key(), 'How do I reset my router?')).toBeNull();
  });

  it('never returns an answer across contexts, sampling settings or models', async () => {
    const store = new MemoryStore();
    const cache = await SemanticCache.create({ embedder, store });
    await cache.insert(key('You are a pirate.'), 'What is the capital of France?', answer('Arr, Paris.'));
    await cache.insert(key('You are terse.'), 'What is the capital of France?', answer('Paris.'));
    expect(cache.size).toBe(2);
    expect((await cache.lookup(key('You are a pirate.'), 'What is the capital of France?'))?.entry.response).toEqual(answer('Arr, Paris.'));
    expect((await cache.lookup(key('You are terse.'), 'What is the capital of France?'))?.entry.response).toEqual(answer('Paris.'));
    expect(await cache.lookup(key('You are polite.'), 'What is the capital of France?')).toBeNull();
    expect(await cache.lookup(key('You are terse.', samplingKey({ temperature: 0.7 })), 'What is the capital of France?')).toBeNull();
    expect(await cache.lookup({ ...key('You are terse.'), model: 'other-model' }, 'What is the capital of France?')).toBeNull();
    // Still isolated after a reopen.
    const again = await SemanticCache.create({ embedder, store });
    expect((await again.lookup(key('You are a pirate.'), 'what is the capital of france'))?.entry.response).toEqual(answer('Arr, Paris.'));
    expect(await again.lookup(key('You are polite.'), 'what is the capital of france')).toBeNull();
  });

  it('hashContext and samplingKey are stable and unambiguous', () => {
    expect(hashContext(['ab', 'c'])).not.toBe(hashContext(['a', 'bc']));
    expect(hashContext(['x'])).toBe(hashContext(['x']));
    expect(hashContext([''])).toMatch(/^[0-9a-f]{64}$/);
    expect(samplingKey({ top_p: 1, temperature: 0, seed: undefined })).toBe(samplingKey({ temperature: 0, top_p: 1 }));
  });

  it('expires entries after their TTL and removes them from the store', async () => {
    let now = 1_000_000;
    const store = new MemoryStore();
    const cache = await SemanticCache.create({ embedder, store, ttlMs: 1000, now: () => now });
    const a = await cache.insert(key(), 'track my order', answer('It ships today.'));
    const b = await cache.insert(key(), 'cancel my order', answer('Cancelled.'), { ttlMs: 5000 });
    expect(a!.expiresAtMs).toBe(now + 1000);
    now += 999;
    expect(await cache.lookup(key(), 'track my order')).not.toBeNull();
    now += 1; // exactly at expiry: gone
    expect(await cache.lookup(key(), 'track my order')).toBeNull();
    expect(store.map.has(a!.id)).toBe(false);
    expect(cache.size).toBe(1);
    expect(await cache.lookup(key(), 'cancel my order')).not.toBeNull(); // its own, longer TTL
    // Expired entries found at load are deleted too.
    now += 5000;
    const reopened = await SemanticCache.create({ embedder, store, now: () => now });
    expect(reopened.loadStats.expired).toBe(1);
    expect(reopened.size).toBe(0);
    expect(store.map.has(b!.id)).toBe(false);
  });

  it('evicts the least recently used entries to stay within maxBytes; a hit counts as a use', async () => {
    let now = 0;
    const store = new MemoryStore();
    const probe = await SemanticCache.create({ embedder, store: new MemoryStore() });
    const size = (await probe.insert(key(), 'query one', answer('r1')))!.sizeBytes;
    expect(size).toBeGreaterThan(embedder.dim * 4);
    const cache = await SemanticCache.create({ embedder, store, maxBytes: 3 * size, now: () => ++now });
    const one = await cache.insert(key(), 'query one', answer('r1'));
    const two = await cache.insert(key(), 'query two', answer('r2'));
    await cache.insert(key(), 'query six', answer('r3'));
    expect(cache.sizeBytes).toBe(3 * size);
    expect(await cache.lookup(key(), 'query one')).not.toBeNull(); // one is now the most recent
    await cache.insert(key(), 'query ten', answer('r4'));
    expect(cache.sizeBytes).toBeLessThanOrEqual(3 * size);
    expect(cache.list().map((e) => e.query)).toEqual(['query six', 'query one', 'query ten']);
    expect(await cache.lookup(key(), 'query two')).toBeNull();
    expect(store.map.has(two!.id)).toBe(false);
    expect(store.map.has(one!.id)).toBe(true);
    // The LRU order survives a reopen (the touch was persisted), and a smaller budget evicts at load.
    await cache.flush();
    const small = await SemanticCache.create({ embedder, store, maxBytes: 2 * size, now: () => ++now });
    expect(small.loadStats.evicted).toBe(1);
    expect(small.list().map((e) => e.query)).toEqual(['query one', 'query ten']);
    expect(store.map.size).toBe(2);
  });

  it('does not store an entry that alone is over the budget', async () => {
    const cache = await SemanticCache.create({ embedder, store: new MemoryStore(), maxBytes: 1000 });
    expect(await cache.insert(key(), 'q', answer('r'))).toBeNull();
    expect(cache.size).toBe(0);
  });

  it('skips and deletes corrupted entries on load, keeps the good ones and other embedders’ entries', async () => {
    const store = new MemoryStore();
    const cache = await SemanticCache.create({ embedder, store });
    const good = await cache.insert(key(), 'where is my package', answer('On its way.'));
    const template = JSON.parse(store.map.get(good!.id)!) as Record<string, unknown>;
    const nanVector = btoa(String.fromCharCode(...new Uint8Array(new Float32Array(embedder.dim).fill(NaN).buffer)));
    const shortVector = btoa(String.fromCharCode(...new Uint8Array(new Float32Array(16).buffer)));
    const corrupted: Record<string, string> = {
      notJson: '{"v":1,',
      notObject: '42',
      wrongShape: JSON.stringify({ ...template, key: { model: 'm' } }),
      wrongLength: JSON.stringify({ ...template, vector: shortVector }),
      nanVector: JSON.stringify({ ...template, vector: nanVector }),
      badBase64: JSON.stringify({ ...template, vector: '***' }),
      wrongId: JSON.stringify(template), // a valid record under an id that is not its own
    };
    for (const [id, s] of Object.entries(corrupted)) store.map.set(id, s);
    store.map.set('other', JSON.stringify({ ...template, embedder: 'xenova:other' }));
    // MemoryStore parses on read; an unparseable value is the FileStore test's case.
    store.map.delete('notJson');
    const reopened = await SemanticCache.create({ embedder, store });
    expect(reopened.loadStats).toMatchObject({ loaded: 1, corrupted: 6, otherEmbedder: 1 });
    expect([...store.map.keys()].sort()).toEqual([good!.id, 'other'].sort());
    expect((await reopened.lookup(key(), 'where is my package?'))?.entry.response).toEqual(answer('On its way.'));
  });

  it('refuses bad arguments with BAD_REQUEST', async () => {
    await expect(SemanticCache.create({ embedder: { id: 'unknown', dim: 4, embed: () => Promise.resolve([]) }, store: new MemoryStore() })).rejects.toThrow(
      /No calibrated threshold/,
    );
    await expect(SemanticCache.create({ embedder, store: new MemoryStore(), threshold: 2 })).rejects.toBeInstanceOf(EngineError);
    const cache = await SemanticCache.create({ embedder, store: new MemoryStore() });
    await expect(cache.lookup({ model: 'm', context: 'c' } as CacheKey, 'q')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(cache.insert(key(), 'q', undefined)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('FileStore', () => {
  it('persists entries through a reopen', async () => {
    const dir = tmp();
    const cache = await SemanticCache.create({ embedder, store: await FileStore.open(dir) });
    await cache.insert(key(), 'What are your opening hours?', answer('9 to 5.'));
    await cache.insert(key(), 'Do you ship to Germany?', answer('Yes.'));
    const reopened = await SemanticCache.create({ embedder, store: await FileStore.open(dir) });
    expect(reopened.size).toBe(2);
    expect((await reopened.lookup(key(), 'hey, what are the opening hours please'))?.entry.response).toEqual(answer('9 to 5.'));
    expect((await reopened.lookup(key(), 'do u ship to germany'))?.entry.response).toEqual(answer('Yes.'));
    await reopened.flush(); // the hits' LRU touches, before the directory is removed
  });

  it('two concurrent inserts both persist', async () => {
    const dir = tmp();
    const cache = await SemanticCache.create({ embedder, store: await FileStore.open(dir) });
    await Promise.all([cache.insert(key(), 'track my order', answer('a')), cache.insert(key(), 'cancel my order', answer('b'))]);
    const reopened = await SemanticCache.create({ embedder, store: await FileStore.open(dir) });
    expect(
      reopened
        .list()
        .map((e) => e.query)
        .sort(),
    ).toEqual(['cancel my order', 'track my order']);
    // And many at once, through compactions, straight on the store.
    const store = await FileStore.open(tmp());
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.set(`k${i}`, { i })));
    await Promise.all(Array.from({ length: 100 }, (_, i) => store.delete(`k${2 * i}`)));
    const back = await FileStore.open(store.dir);
    const got = (await back.entries()).map(([k]) => k).sort();
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `k${2 * i + 1}`).sort());
  });

  it('skips a torn or garbled line, rewrites the log, and the cache deletes a corrupted record', async () => {
    const dir = tmp();
    const cache = await SemanticCache.create({ embedder, store: await FileStore.open(dir) });
    await cache.insert(key(), 'where is my package', answer('On its way.'));
    const path = join(dir, 'entries.jsonl');
    appendFileSync(path, '{"op":"set","id":"bad","value":{"v":1,"embedder":"lexical-v1-d2048","query":"x"}}\nnot json at all\n{"op":"set","id":"torn","val');
    const store = await FileStore.open(dir);
    expect(store.skippedLines).toBe(2);
    expect(readFileSync(path, 'utf8').endsWith('\n')).toBe(true);
    const reopened = await SemanticCache.create({ embedder, store });
    expect(reopened.loadStats).toMatchObject({ loaded: 1, corrupted: 1 });
    expect(await store.get('bad')).toBeUndefined();
    const last = await FileStore.open(dir);
    expect((await last.entries()).length).toBe(1);
    expect(last.skippedLines).toBe(0);
  });
});

describe('IdbStore', () => {
  /** An idb-keyval-shaped fake over a Map that throws QuotaExceededError once it holds `capacity` entries. */
  function fakeIdb(capacity: number) {
    const db = new Map<string, unknown>();
    let setCalls = 0;
    const api: IdbKeyvalApi<string> = {
      createStore: (dbName, storeName) => `${dbName}/${storeName}`,
      get: (k) => Promise.resolve(structuredClone(db.get(k))),
      set: (k, v) => {
        setCalls++;
        if (!db.has(k) && db.size >= capacity) return Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
        db.set(k, structuredClone(v));
        return Promise.resolve();
      },
      del: (k) => {
        db.delete(k);
        return Promise.resolve();
      },
      entries: () => Promise.resolve([...db].map(([k, v]) => [k, structuredClone(v)] as [string, unknown])),
    };
    return { db, api: api as IdbKeyvalApi<unknown>, setCalls: () => setCalls };
  }

  it('persists entries through a reopen', async () => {
    const { api } = fakeIdb(100);
    const cache = await SemanticCache.create({ embedder, store: IdbStore.open({ api }) });
    await cache.insert(key(), 'cancel my subscription', answer('Done.'));
    const reopened = await SemanticCache.create({ embedder, store: IdbStore.open({ api }) });
    expect((await reopened.lookup(key(), 'I want to cancel my subscription please'))?.entry.response).toEqual(answer('Done.'));
  });

  it('a quota error degrades to memory: the cache keeps working, stored entries stay, the error is reported once', async () => {
    const { db, api, setCalls } = fakeIdb(2);
    const errors: EngineError[] = [];
    const store = IdbStore.open({ api, onError: (e) => errors.push(e) });
    const cache = await SemanticCache.create({ embedder, store });
    await cache.insert(key(), 'track my order', answer('a'));
    await cache.insert(key(), 'cancel my order', answer('b'));
    expect(store.degraded).toBe(false);
    await cache.insert(key(), 'where is my package', answer('c')); // over quota
    await cache.insert(key(), 'what is the refund policy', answer('d'));
    expect(setCalls()).toBe(3); // once degraded, writes go to memory without retrying IndexedDB
    expect(store.degraded).toBe(true);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(EngineError);
    expect(errors[0]!.message).toMatch(/quota/);
    expect(errors[0]).toMatchObject({ code: 'STORAGE_QUOTA_EXCEEDED', details: { cause: 'QuotaExceededError', degraded: true } });
    // Everything is still served: old entries from IndexedDB, new ones from memory.
    for (const [q, r] of [
      ['Track my order!', 'a'],
      ['cancel my order', 'b'],
      ['where is my package?', 'c'],
      ["What's the refund policy", 'd'],
    ] as const)
      expect((await cache.lookup(key(), q))?.entry.response).toEqual(answer(r));
    expect(db.size).toBe(2); // nothing already stored was dropped
    expect((await store.entries()).length).toBe(4);
    await cache.flush(); // hits' LRU touches were written (to IndexedDB or memory) without another report
    expect(errors).toHaveLength(1);
    // A later session over the same database still has what IndexedDB kept.
    const next = await SemanticCache.create({ embedder, store: IdbStore.open({ api }) });
    expect(next.size).toBe(2);
  });

  it('passes other errors through', async () => {
    const { api } = fakeIdb(10);
    const failing = { ...api, set: () => Promise.reject(new DOMException('gone', 'InvalidStateError')) };
    const store = IdbStore.open({ api: failing, onError: () => undefined });
    await expect(store.set('a', 1)).rejects.toMatchObject({ name: 'InvalidStateError' });
    expect(store.degraded).toBe(false);
  });
});

// fetchModel against an in-memory store and a fake fetch: progress, offline hits, SHA-256 checks,
// quota handling. The OPFS backend itself is covered in the browser (test/browser/pwa.spec.mjs).

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { deleteModel, fetchModel, listModels, memoryStore, Sha256 } from '../../src/storage/model-store.js';

const URL1 = 'http://example.test/models/a.gguf';

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A fetch that serves `body` in `chunkBytes` pieces with a Content-Length, and counts calls. */
function fakeFetch(body: Uint8Array, chunkBytes = 1000, status = 200): typeof fetch & { calls: number } {
  const f = ((): Promise<Response> => {
    f.calls++;
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= body.byteLength) return c.close();
        c.enqueue(body.slice(at, at + chunkBytes));
        at += chunkBytes;
      },
    });
    return Promise.resolve(new Response(stream, { status, headers: { 'Content-Length': String(body.byteLength) } }));
  }) as unknown as typeof fetch & { calls: number };
  f.calls = 0;
  return f;
}

async function blobBytes(b: Blob): Promise<Uint8Array> {
  return new Uint8Array(await b.arrayBuffer());
}

describe('Sha256', () => {
  it('matches node:crypto on ragged sizes and split updates', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100_003]) {
      const b = bytes(n, n + 7);
      expect(new Sha256().update(b).hex()).toBe(sha(b));
      const h = new Sha256();
      for (let i = 0; i < n; i += 37) h.update(b.subarray(i, i + 37));
      expect(h.hex()).toBe(sha(b));
    }
  });
});

describe('fetchModel', () => {
  it('reports byte progress, stores the file with its digest, and answers later calls from the store', async () => {
    const body = bytes(10_500);
    const store = memoryStore();
    const f = fakeFetch(body);
    const seen: [number, number][] = [];
    const b1 = await fetchModel(URL1, { store, fetch: f, onProgress: (n, t) => seen.push([n, t]) });
    expect(await blobBytes(b1)).toEqual(body);
    expect(seen.length).toBe(11);
    expect(seen.at(-1)).toEqual([10_500, 10_500]);
    expect(seen.every(([n, t], i) => t === 10_500 && (i === 0 || n > seen[i - 1]![0]))).toBe(true);
    const [rec] = await listModels({ store });
    expect(rec).toMatchObject({ url: URL1, sizeBytes: 10_500, sha256: sha(body) });

    const b2 = await fetchModel(URL1, { store, fetch: f, sha256: sha(body) });
    expect(f.calls).toBe(1);
    expect(await blobBytes(b2)).toEqual(body);

    expect(await deleteModel(URL1, { store })).toBe(true);
    expect(await listModels({ store })).toEqual([]);
    await fetchModel(URL1, { store, fetch: f });
    expect(f.calls).toBe(2);
  });

  it('a SHA-256 mismatch throws BAD_MODEL_FILE and keeps nothing', async () => {
    const body = bytes(5000);
    const store = memoryStore();
    const wrong = 'ab'.repeat(32);
    const e = await fetchModel(URL1, { store, fetch: fakeFetch(body), sha256: wrong }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('BAD_MODEL_FILE');
    expect((e as EngineError).message).toContain(sha(body));
    expect((e as EngineError).message).toContain(wrong);
    expect(store.entries.size).toBe(0);
  });

  it('a stored copy with another digest than expected is fetched again', async () => {
    const store = memoryStore();
    const old = bytes(3000, 1);
    const next = bytes(3000, 2);
    await fetchModel(URL1, { store, fetch: fakeFetch(old) });
    const f = fakeFetch(next);
    const b = await fetchModel(URL1, { store, fetch: f, sha256: sha(next) });
    expect(f.calls).toBe(1);
    expect(await blobBytes(b)).toEqual(next);
    expect(store.entries.get(URL1)?.record.sha256).toBe(sha(next));
  });

  it('over quota: reports MODEL_TOO_LARGE with the numbers and still returns the bytes', async () => {
    const body = bytes(8000);
    const store = memoryStore({ quotaBytes: 5000 });
    const errors: EngineError[] = [];
    const b = await fetchModel(URL1, { store, fetch: fakeFetch(body), onStoreError: (e) => errors.push(e) });
    expect(await blobBytes(b)).toEqual(body);
    expect(errors.map((e) => e.code)).toEqual(['MODEL_TOO_LARGE']);
    expect(errors[0]!.details).toMatchObject({ sizeBytes: 8000, quotaBytes: 5000, usageBytes: 0 });
    expect(store.entries.size).toBe(0);
  });

  it('a quota failure part-way (the estimate was wrong) refetches without storing', async () => {
    const body = bytes(8000);
    const store = memoryStore({ quotaBytes: 5000 });
    store.estimate = () => Promise.resolve(null);
    const errors: EngineError[] = [];
    const f = fakeFetch(body);
    const b = await fetchModel(URL1, { store, fetch: f, onStoreError: (e) => errors.push(e) });
    expect(await blobBytes(b)).toEqual(body);
    expect(f.calls).toBe(2);
    expect(errors.map((e) => e.code)).toEqual(['MODEL_TOO_LARGE']);
    expect(store.entries.size).toBe(0);
  });

  it('HTTP errors and bad digests are BAD_REQUEST; cache: false skips the store', async () => {
    const store = memoryStore();
    const e = await fetchModel(URL1, { store, fetch: fakeFetch(bytes(10), 10, 404) }).catch((x: unknown) => x);
    expect((e as EngineError).code).toBe('BAD_REQUEST');
    expect((e as EngineError).message).toMatch(/HTTP 404/);
    const e2 = await fetchModel(URL1, { store, fetch: fakeFetch(bytes(10)), sha256: 'xyz' }).catch((x: unknown) => x);
    expect((e2 as EngineError).code).toBe('BAD_REQUEST');
    await fetchModel(URL1, { store, fetch: fakeFetch(bytes(10)), cache: false });
    expect(store.entries.size).toBe(0);
  });
});

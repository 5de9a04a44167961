// Model file store: fetch a GGUF by URL with byte progress, keep it in the Origin Private File System
// for offline use, verify its SHA-256. A new backend implements ModelStoreBackend (see memoryStore).
//
// Why OPFS (docs/storage.md has the full comparison): model files are 0.1–8 GB. All three browser
// stores share one per-origin quota (navigator.storage.estimate(); Chrome gives an origin up to
// ~60 % of the disk, Firefox 10 GiB / 10 % best-effort or 50 % persisted, Safari ~60 %), so the
// difference is how a multi-GB entry gets in and out:
//  - OPFS: FileSystemFileHandle.createWritable() streams chunk by chunk into a swap file that only
//    replaces the entry on close() (an interrupted download never leaves a half file behind), and
//    getFile() returns a disk-backed File, so the worker reads slices without the whole file in
//    memory. Works on the main thread and in workers (Chrome 86+, Firefox 111+, Safari 26+).
//  - Cache Storage: put(url, Response) also streams, and match() gives a disk-backed body, but the
//    entry is opaque (no rename/commit step, no place for the digest besides a header) and
//    eviction is all-or-nothing per cache; kept as the fallback idea, not implemented.
//  - IndexedDB: a value must exist whole before put(), so a multi-GB Blob would be built first
//    (or split across many records and reassembled); no streaming write. Rejected.
// Integrity: crypto.subtle.digest() needs the whole buffer, so the SHA-256 is computed
// incrementally in JS (Sha256 below, ~110 MiB/s in Node 20 here) while the body streams, stored with the
// entry, and compared with the expected digest when one is given.

import { EngineError } from '../api/errors.js';

/** What the store keeps beside each file's bytes. */
export interface StoredModel {
  /** Absolute URL the bytes came from; the store's key. */
  url: string;
  sizeBytes: number;
  /** Lower-case hex SHA-256 of the bytes. */
  sha256: string;
  /** Date.now() when the entry was committed. */
  storedAtMs: number;
}

/** An entry being written; nothing is visible to get() before commit(). */
export interface ModelWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Makes the entry visible and returns its bytes (disk-backed where the store allows). */
  commit(record: StoredModel): Promise<Blob>;
  abort(): Promise<void>;
}

/** Where fetchModel keeps files. opfsStore() in a browser, memoryStore() in tests. */
export interface ModelStoreBackend {
  get(url: string): Promise<{ record: StoredModel; blob: Blob } | null>;
  open(url: string): Promise<ModelWriter>;
  /** True when an entry was removed. */
  delete(url: string): Promise<boolean>;
  list(): Promise<StoredModel[]>;
  /** The origin's quota and usage in bytes, or null where the platform does not say. */
  estimate(): Promise<{ quotaBytes: number; usageBytes: number } | null>;
}

export interface FetchModelOptions {
  /** Bytes so far and the expected total (0 when the server sends no Content-Length). */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Expected lower-case hex SHA-256; a mismatch throws BAD_MODEL_FILE and drops the stored copy. */
  sha256?: string;
  signal?: AbortSignal;
  /** Keep the file for offline use and answer from the store first. Default true. */
  cache?: boolean;
  /**
   * The file could not be stored (quota, no OPFS); the bytes are still returned. Default: console.warn.
   * The error is MODEL_TOO_LARGE for quota problems (details: sizeBytes, quotaBytes, usageBytes), else BAD_REQUEST.
   */
  onStoreError?: (e: EngineError) => void;
  /** Overrides for tests: the store (default: OPFS, or none where unavailable) and fetch. */
  store?: ModelStoreBackend | null;
  fetch?: typeof fetch;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Absolute form of a URL, the store's key; relative URLs resolve against the page or worker. */
export function modelKey(url: string): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return new URL(url, base).href;
  } catch {
    return url;
  }
}

/**
 * Fetches a model file with byte progress, stores it for offline use and returns its bytes; a later
 * call for the same URL returns the stored copy without touching the network.
 *
 * @example
 * const blob = await fetchModel('/models/llama-f32.gguf', { onProgress: (n, total) => bar.update(n, total) });
 * await createWorkerEngine().load(blob);
 */
export async function fetchModel(url: string, o: FetchModelOptions = {}): Promise<Blob> {
  const key = modelKey(url);
  const expected = o.sha256?.trim().toLowerCase() || undefined;
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected))
    throw new EngineError('BAD_REQUEST', `The expected SHA-256 '${o.sha256}' is not 64 hex digits.`, { sha256: o.sha256 });
  const cache = o.cache !== false;
  const store = !cache ? null : o.store !== undefined ? o.store : await defaultStore();
  const storeError = (e: EngineError): void => {
    if (o.onStoreError) o.onStoreError(e);
    else console.warn(`hearth: ${e.code}: ${e.message}`);
  };

  if (store) {
    const hit = await store.get(key).catch(() => null);
    if (hit && (expected === undefined || hit.record.sha256 === expected)) {
      o.onProgress?.(hit.record.sizeBytes, hit.record.sizeBytes);
      return hit.blob;
    }
    // A stored copy with another digest is an older file at the same URL: fetch it again.
    if (hit) await store.delete(key).catch(() => false);
  }
  return download(url, key, expected, store, o, storeError);
}

async function download(
  url: string,
  key: string,
  expected: string | undefined,
  store: ModelStoreBackend | null,
  o: FetchModelOptions,
  storeError: (e: EngineError) => void,
): Promise<Blob> {
  const doFetch = o.fetch ?? globalThis.fetch.bind(globalThis);
  let res: Response;
  try {
    res = await doFetch(url, o.signal ? { signal: o.signal } : {});
  } catch (e) {
    if (o.signal?.aborted) throw new EngineError('ABORTED', `Loading ${url} was aborted.`, { url });
    throw new EngineError(
      'BAD_REQUEST',
      `Could not fetch the model from ${url}: ${e instanceof Error ? e.message : String(e)}. It is not stored for offline use; check the URL and the connection.`,
      { url },
    );
  }
  if (!res.ok || !res.body)
    throw new EngineError('BAD_REQUEST', `Could not fetch the model from ${url}: HTTP ${res.status} ${res.statusText}. Check the URL.`, {
      url,
      status: res.status,
    });
  // With Content-Encoding the header counts compressed bytes; progress then reports max(loaded, total).
  const totalBytes = Number(res.headers.get('Content-Length') ?? 0) || 0;

  let writer: ModelWriter | null = null;
  if (store) writer = await openWriter(store, key, totalBytes).catch((e: unknown) => (storeError(toStoreError(e, key, totalBytes)), null));

  const hash = new Sha256();
  // Without a store the bytes collect as Blob parts: every 64 MiB of chunks becomes one Blob, so
  // the JS heap holds little and the browser's blob storage may page the rest to disk.
  const blobs: Blob[] = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pending.length > 0) blobs.push(new Blob(pending as BlobPart[]));
    pending = [];
    pendingBytes = 0;
  };
  let loadedBytes = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      loadedBytes += value.byteLength;
      if (writer) {
        try {
          await writer.write(value);
        } catch (e) {
          // The bytes written so far are gone with the aborted entry: report, then fetch again without storing.
          await writer.abort().catch(() => undefined);
          writer = null;
          storeError(toStoreError(e, key, totalBytes));
          await reader.cancel().catch(() => undefined);
          return await download(url, key, expected, null, o, storeError);
        }
      } else {
        pending.push(value);
        pendingBytes += value.byteLength;
        if (pendingBytes >= 64 * 2 ** 20) flush();
      }
      o.onProgress?.(loadedBytes, Math.max(totalBytes, loadedBytes));
    }
  } catch (e) {
    await writer?.abort().catch(() => undefined);
    if (e instanceof EngineError) throw e;
    if (o.signal?.aborted) throw new EngineError('ABORTED', `Loading ${url} was aborted after ${mib(loadedBytes)}.`, { url, loadedBytes });
    throw new EngineError('BAD_REQUEST', `The download of ${url} broke off after ${mib(loadedBytes)}: ${e instanceof Error ? e.message : String(e)}.`, {
      url,
      loadedBytes,
    });
  }

  const sha256 = hash.hex();
  if (expected !== undefined && sha256 !== expected) {
    await writer?.abort().catch(() => undefined);
    await store?.delete(key).catch(() => false);
    throw new EngineError(
      'BAD_MODEL_FILE',
      `The model file from ${url} (${loadedBytes} bytes) has SHA-256 ${sha256}, not the expected ${expected}. It was not kept; check the URL and the expected digest.`,
      { url, sizeBytes: loadedBytes, sha256, expectedSha256: expected },
    );
  }
  if (writer) {
    try {
      return await writer.commit({ url: key, sizeBytes: loadedBytes, sha256, storedAtMs: Date.now() });
    } catch (e) {
      await writer.abort().catch(() => undefined);
      storeError(toStoreError(e, key, loadedBytes));
      return download(url, key, expected, null, o, storeError);
    }
  }
  flush();
  return new Blob(blobs);
}

async function openWriter(store: ModelStoreBackend, key: string, totalBytes: number): Promise<ModelWriter> {
  const est = await store.estimate().catch(() => null);
  // Writing would fail part-way: say so up front with the numbers.
  if (est && totalBytes > 0 && est.quotaBytes - est.usageBytes < totalBytes) throw quotaError(key, totalBytes, est.quotaBytes, est.usageBytes);
  await store.delete(key).catch(() => false);
  return store.open(key);
}

function quotaError(url: string, sizeBytes: number, quotaBytes: number, usageBytes: number): EngineError {
  return new EngineError(
    'MODEL_TOO_LARGE',
    `The model file from ${url} (${mib(sizeBytes)}) does not fit in this site's storage (${mib(Math.max(0, quotaBytes - usageBytes))} free of ${mib(quotaBytes)}), ` +
      'so it will not be available offline; it is still loaded. Free space with deleteModel() or in the browser settings.',
    { url, sizeBytes, quotaBytes, usageBytes },
  );
}

function toStoreError(e: unknown, url: string, sizeBytes: number): EngineError {
  if (e instanceof EngineError) return e;
  const name = e instanceof Error ? e.name : '';
  if (name === 'QuotaExceededError') return quotaError(url, sizeBytes, -1, -1);
  return new EngineError(
    'BAD_REQUEST',
    `The model file from ${url} could not be stored for offline use (${name || 'error'}: ${e instanceof Error ? e.message : String(e)}); it is still loaded.`,
    { url, sizeBytes },
  );
}

/** Every stored model, newest first. */
export async function listModels(o: { store?: ModelStoreBackend | null } = {}): Promise<StoredModel[]> {
  const store = o.store !== undefined ? o.store : await defaultStore();
  if (!store) return [];
  return (await store.list()).sort((a, b) => b.storedAtMs - a.storedAtMs);
}

/** Removes the stored copy of url; true when there was one. */
export async function deleteModel(url: string, o: { store?: ModelStoreBackend | null } = {}): Promise<boolean> {
  const store = o.store !== undefined ? o.store : await defaultStore();
  return store ? store.delete(modelKey(url)) : false;
}

// ---------------------------------------------------------------------------------------------
// Backends

let defaultStorePromise: Promise<ModelStoreBackend | null> | null = null;

/** OPFS where the platform has it (with streaming writes), otherwise no store. */
function defaultStore(): Promise<ModelStoreBackend | null> {
  defaultStorePromise ??= opfsStore().catch(() => null);
  return defaultStorePromise;
}

/** Files in the Origin Private File System under `dir`: `<key>.bin` bytes, `<key>.json` record. */
export async function opfsStore(dir = 'hearth-models'): Promise<ModelStoreBackend | null> {
  const storage = (globalThis as { navigator?: Navigator }).navigator?.storage;
  if (!storage || typeof storage.getDirectory !== 'function') return null;
  const root = await storage.getDirectory();
  const d = await root.getDirectoryHandle(dir, { create: true });
  // Safari before 26 has only worker-side sync access handles: no streaming write, so no store.
  const probe = await d.getFileHandle('.probe', { create: true });
  const canStream = typeof (probe as { createWritable?: unknown }).createWritable === 'function';
  await d.removeEntry('.probe').catch(() => undefined);
  if (!canStream) return null;

  const name = (url: string): string => new Sha256().update(new TextEncoder().encode(url)).hex().slice(0, 40);
  const remove = async (n: string): Promise<boolean> => {
    try {
      await d.removeEntry(n);
      return true;
    } catch {
      return false;
    }
  };
  const readRecord = async (n: string): Promise<StoredModel | null> => {
    try {
      const text = await (await (await d.getFileHandle(n)).getFile()).text();
      const r = JSON.parse(text) as StoredModel;
      return typeof r.url === 'string' && typeof r.sizeBytes === 'number' && typeof r.sha256 === 'string' ? r : null;
    } catch {
      return null;
    }
  };
  const writeText = async (n: string, text: string): Promise<void> => {
    const w = await (await d.getFileHandle(n, { create: true })).createWritable();
    await w.write(text);
    await w.close();
  };
  return {
    async get(url) {
      const n = name(url);
      const record = await readRecord(`${n}.json`);
      if (!record || record.url !== url) return null;
      let file: File;
      try {
        file = await (await d.getFileHandle(`${n}.bin`)).getFile();
      } catch {
        await remove(`${n}.json`);
        return null;
      }
      // A record whose bytes were cut short (storage cleared under us) is no entry.
      if (file.size !== record.sizeBytes) {
        await remove(`${n}.json`);
        await remove(`${n}.bin`);
        return null;
      }
      return { record, blob: file };
    },
    async open(url) {
      const n = name(url);
      const handle = await d.getFileHandle(`${n}.bin`, { create: true });
      // The swap file replaces the entry only on close(); abort() leaves nothing behind.
      const w = await handle.createWritable();
      return {
        write: (chunk) => w.write(chunk as Uint8Array<ArrayBuffer>),
        async commit(record) {
          await w.close();
          await writeText(`${n}.json`, JSON.stringify(record));
          return handle.getFile();
        },
        async abort() {
          await w.abort().catch(() => undefined);
          await remove(`${n}.bin`);
        },
      };
    },
    async delete(url) {
      const n = name(url);
      const had = await remove(`${n}.json`);
      return (await remove(`${n}.bin`)) || had;
    },
    async list() {
      const out: StoredModel[] = [];
      const keys = (d as unknown as { keys(): AsyncIterable<string> }).keys();
      for await (const k of keys) {
        if (!k.endsWith('.json')) continue;
        const r = await readRecord(k);
        if (r) out.push(r);
      }
      return out;
    },
    async estimate() {
      const e = await storage.estimate();
      return e.quota !== undefined && e.usage !== undefined ? { quotaBytes: e.quota, usageBytes: e.usage } : null;
    },
  };
}

/** In memory, for tests and as a model of the contract; quotaBytes limits what it will hold. */
export function memoryStore(o: { quotaBytes?: number } = {}): ModelStoreBackend & { entries: Map<string, { record: StoredModel; bytes: Uint8Array }> } {
  const entries = new Map<string, { record: StoredModel; bytes: Uint8Array }>();
  const quotaBytes = o.quotaBytes ?? Number.MAX_SAFE_INTEGER;
  const used = (): number => [...entries.values()].reduce((s, e) => s + e.bytes.byteLength, 0);
  return {
    entries,
    get(url) {
      const e = entries.get(url);
      return Promise.resolve(e ? { record: e.record, blob: new Blob([e.bytes as Uint8Array<ArrayBuffer>]) } : null);
    },
    open(url) {
      const chunks: Uint8Array[] = [];
      let size = 0;
      return Promise.resolve({
        write(chunk) {
          if (used() + size + chunk.byteLength > quotaBytes) {
            const e = new Error('quota exceeded');
            e.name = 'QuotaExceededError';
            return Promise.reject(e);
          }
          chunks.push(chunk.slice());
          size += chunk.byteLength;
          return Promise.resolve();
        },
        commit(record) {
          const bytes = new Uint8Array(size);
          let at = 0;
          for (const c of chunks) {
            bytes.set(c, at);
            at += c.byteLength;
          }
          entries.set(url, { record, bytes });
          return Promise.resolve(new Blob([bytes]));
        },
        abort() {
          chunks.length = 0;
          return Promise.resolve();
        },
      });
    },
    delete(url) {
      return Promise.resolve(entries.delete(url));
    },
    list() {
      return Promise.resolve([...entries.values()].map((e) => e.record));
    },
    estimate() {
      return Promise.resolve(Number.isFinite(quotaBytes) && quotaBytes < Number.MAX_SAFE_INTEGER ? { quotaBytes, usageBytes: used() } : null);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), incremental: crypto.subtle.digest() has no streaming form.

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74,
  0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d,
  0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
  0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
  0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** Incremental SHA-256: update() any number of times, then hex() once. */
export class Sha256 {
  private readonly h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  private readonly w = new Uint32Array(64);
  private readonly buf = new Uint8Array(64);
  private bufLen = 0;
  private totalBytes = 0;

  update(data: Uint8Array): this {
    let i = 0;
    this.totalBytes += data.byteLength;
    if (this.bufLen > 0) {
      const n = Math.min(64 - this.bufLen, data.byteLength);
      this.buf.set(data.subarray(0, n), this.bufLen);
      this.bufLen += n;
      i = n;
      if (this.bufLen < 64) return this;
      this.block(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 64 <= data.byteLength; i += 64) this.block(data, i);
    if (i < data.byteLength) {
      this.buf.set(data.subarray(i), 0);
      this.bufLen = data.byteLength - i;
    }
    return this;
  }

  hex(): string {
    const bits = this.totalBytes * 8;
    const pad = new Uint8Array((this.bufLen < 56 ? 56 : 120) - this.bufLen + 8);
    pad[0] = 0x80;
    const dv = new DataView(pad.buffer);
    dv.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    dv.setUint32(pad.length - 4, bits >>> 0);
    this.update(pad);
    return [...this.h].map((x) => x.toString(16).padStart(8, '0')).join('');
  }

  private block(d: Uint8Array, off: number): void {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      const j = off + t * 4;
      w[t] = ((d[j]! << 24) | (d[j + 1]! << 16) | (d[j + 2]! << 8) | d[j + 3]!) >>> 0;
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15]!;
      const b = w[t - 2]!;
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) >>> 0;
    }
    const h = this.h;
    let a = h[0]!;
    let b = h[1]!;
    let c = h[2]!;
    let e = h[4]!;
    let dd = h[3]!;
    let f = h[5]!;
    let g = h[6]!;
    let hh = h[7]!;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t]! + w[t]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (dd + t1) | 0;
      dd = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = h[0]! + a;
    h[1] = h[1]! + b;
    h[2] = h[2]! + c;
    h[3] = h[3]! + dd;
    h[4] = h[4]! + e;
    h[5] = h[5]! + f;
    h[6] = h[6]! + g;
    h[7] = h[7]! + hh;
  }
}

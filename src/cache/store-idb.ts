// IdbStore: the semantic cache's browser store, IndexedDB through idb-keyval. When the origin's quota
// runs out it degrades to memory for new writes and reports that once. The idb-keyval calls are injectable (tests).

import * as idbKeyval from 'idb-keyval';
import { EngineError } from '../api/errors.js';
import type { CacheStore } from './store.js';

/** The idb-keyval functions IdbStore calls; pass a fake to test without a browser. */
export interface IdbKeyvalApi<S = idbKeyval.UseStore> {
  createStore(dbName: string, storeName: string): S;
  get(key: string, store: S): Promise<unknown>;
  set(key: string, value: unknown, store: S): Promise<void>;
  del(key: string, store: S): Promise<void>;
  entries(store: S): Promise<[IDBValidKey, unknown][]>;
}

export interface IdbStoreOptions {
  dbName?: string;
  storeName?: string;
  /** Called once, when the first write fails for lack of quota. Default: one console.warn. */
  onError?: (e: EngineError) => void;
  api?: IdbKeyvalApi<unknown>;
}

const defaultApi: IdbKeyvalApi = {
  createStore: idbKeyval.createStore,
  get: (k, s) => idbKeyval.get(k, s),
  set: idbKeyval.set,
  del: idbKeyval.del,
  entries: (s) => idbKeyval.entries(s),
};

function isQuotaError(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED';
}

/**
 * Entries in one IndexedDB object store (default database 'hearth-semantic-cache', store 'entries').
 * After a QuotaExceededError the store is `degraded`: what IndexedDB already holds stays readable
 * (nothing is cleared), new writes live in memory for this session, and deletes still reach IndexedDB.
 * @example
 *   const store = IdbStore.open({ onError: (e) => console.warn(e.message) });
 */
export class IdbStore implements CacheStore {
  /** True once a write failed for lack of quota; writes since then are in memory only. */
  degraded = false;
  /** The quota error, as reported. */
  degradedError: EngineError | null = null;
  private readonly overlay = new Map<string, string>(); // writes since degrading: id → JSON
  private readonly tombstones = new Set<string>(); // deleted here but still in IndexedDB (its delete failed)

  private constructor(
    private readonly api: IdbKeyvalApi<unknown>,
    private readonly idb: unknown,
    private readonly dbName: string,
    private readonly onError: (e: EngineError) => void,
  ) {}

  static open(opts: IdbStoreOptions = {}): IdbStore {
    const api = opts.api ?? defaultApi;
    const dbName = opts.dbName ?? 'hearth-semantic-cache';
    const idb = api.createStore(dbName, opts.storeName ?? 'entries');
    return new IdbStore(api, idb, dbName, opts.onError ?? ((e) => console.warn(`hearth: ${e.message}`)));
  }

  async get(id: string): Promise<unknown> {
    if (this.tombstones.has(id)) return undefined;
    const s = this.overlay.get(id);
    if (s !== undefined) return JSON.parse(s) as unknown;
    return this.api.get(id, this.idb);
  }

  async set(id: string, value: unknown): Promise<void> {
    if (!this.degraded) {
      try {
        await this.api.set(id, value, this.idb);
        this.tombstones.delete(id);
        return;
      } catch (e) {
        if (!isQuotaError(e)) throw e;
        this.degrade(e);
      }
    }
    const json = JSON.stringify(value);
    if (json === undefined) throw new EngineError('BAD_REQUEST', `IdbStore.set(${id}): the value is not JSON-serializable.`, { id });
    this.overlay.set(id, json);
    this.tombstones.delete(id);
  }

  async delete(id: string): Promise<void> {
    this.overlay.delete(id);
    try {
      await this.api.del(id, this.idb);
      this.tombstones.delete(id);
    } catch (e) {
      if (!isQuotaError(e)) throw e;
      this.degrade(e);
      this.tombstones.add(id);
    }
  }

  async entries(): Promise<[string, unknown][]> {
    const out = new Map<string, unknown>();
    for (const [k, v] of await this.api.entries(this.idb)) if (typeof k === 'string' && !this.tombstones.has(k)) out.set(k, v);
    for (const [k, s] of this.overlay) out.set(k, JSON.parse(s) as unknown);
    return [...out];
  }

  private degrade(cause: unknown): void {
    if (this.degraded) return;
    this.degraded = true;
    const e = new EngineError(
      'STORAGE_QUOTA_EXCEEDED',
      `The semantic cache's IndexedDB database '${this.dbName}' is out of storage quota (${(cause as Error).name}); ` +
        'new cache entries are kept in memory for this session only and entries already stored stay usable. Free site storage or lower the cache maxBytes.',
      { dbName: this.dbName, cause: (cause as Error).name, degraded: true },
    );
    this.degradedError = e;
    this.onError(e);
  }
}

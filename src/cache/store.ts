// CacheStore: where the semantic cache persists its entries (plain JSON values by string id), and
// MemoryStore. A new backend implements CacheStore; store-file.ts (Node) and store-idb.ts (browser) are the others.

/**
 * An async key-value store of JSON-serializable values. Values come back as `unknown`: a store may
 * hold entries another version wrote or a crash truncated, and the cache validates each one.
 */
export interface CacheStore {
  get(id: string): Promise<unknown>;
  set(id: string, value: unknown): Promise<void>;
  delete(id: string): Promise<void>;
  /** Every stored [id, value]. */
  entries(): Promise<[string, unknown][]>;
  /** Waits for pending writes and releases resources; the store is not used afterwards. */
  close?(): Promise<void>;
}

/** Keeps values in a Map (cloned through JSON, so what comes back is what a persistent store would give). */
export class MemoryStore implements CacheStore {
  readonly map = new Map<string, string>();

  get(id: string): Promise<unknown> {
    const s = this.map.get(id);
    return Promise.resolve(s === undefined ? undefined : (JSON.parse(s) as unknown));
  }

  set(id: string, value: unknown): Promise<void> {
    this.map.set(id, JSON.stringify(value));
    return Promise.resolve();
  }

  delete(id: string): Promise<void> {
    this.map.delete(id);
    return Promise.resolve();
  }

  entries(): Promise<[string, unknown][]> {
    return Promise.resolve([...this.map].map(([id, s]) => [id, JSON.parse(s) as unknown]));
  }
}

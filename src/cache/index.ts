// VectorIndex: the semantic cache's exact nearest-neighbour search over unit vectors kept in one
// contiguous Float32Array. To add an approximate or GPU scan, keep search()'s contract (exact scores, best first).

import { EngineError } from '../api/errors.js';

/** One search result: the id given to add() and its dot product with the query (= cosine for unit vectors). */
export interface IndexHit {
  id: string;
  score: number;
}

/**
 * Brute-force inner-product search. Vectors live row-major in one Float32Array that doubles when full;
 * delete moves the last row into the hole, so rows stay packed and a scan touches only live rows.
 * TODO(issue 6): above ~1e5 rows move the scan to a WGSL matvec on the engine's device; below that this scan is ms-fast.
 */
export class VectorIndex {
  readonly dim: number;
  // [capacity, dim] f32, rows [0, size) live
  private data: Float32Array;
  private ids: string[] = [];
  private readonly rowOf = new Map<string, number>();

  constructor(dim: number, initialCapacity = 16) {
    if (!Number.isInteger(dim) || dim <= 0) throw new EngineError('BAD_REQUEST', `VectorIndex dim must be a positive integer, got ${dim}.`, { dim });
    this.dim = dim;
    this.data = new Float32Array(dim * Math.max(1, initialCapacity));
  }

  get size(): number {
    return this.ids.length;
  }

  /** Rows the current buffer holds before it grows. */
  get capacity(): number {
    return this.data.length / this.dim;
  }

  has(id: string): boolean {
    return this.rowOf.has(id);
  }

  /** Adds or replaces the vector for `id`. */
  add(id: string, vec: Float32Array): void {
    this.checkDim(vec);
    let row = this.rowOf.get(id);
    if (row === undefined) {
      row = this.ids.length;
      if (row === this.capacity) {
        const grown = new Float32Array(this.data.length * 2);
        grown.set(this.data);
        this.data = grown;
      }
      this.ids.push(id);
      this.rowOf.set(id, row);
    }
    this.data.set(vec, row * this.dim);
  }

  /** Removes `id` by moving the last row into its place. True when it was there. */
  delete(id: string): boolean {
    const row = this.rowOf.get(id);
    if (row === undefined) return false;
    const last = this.ids.length - 1;
    if (row !== last) {
      const lastId = this.ids[last]!;
      this.data.copyWithin(row * this.dim, last * this.dim, (last + 1) * this.dim);
      this.ids[row] = lastId;
      this.rowOf.set(lastId, row);
    }
    this.ids.pop();
    this.rowOf.delete(id);
    return true;
  }

  /** A copy of the stored vector, or null. */
  vector(id: string): Float32Array | null {
    const row = this.rowOf.get(id);
    return row === undefined ? null : this.data.slice(row * this.dim, (row + 1) * this.dim);
  }

  /** The k rows with the largest dot product with `query`, best first (ties: lower row first). */
  search(query: Float32Array, k: number): IndexHit[] {
    this.checkDim(query);
    const n = this.ids.length;
    const kk = Math.min(Math.max(0, Math.floor(k)), n);
    if (kk === 0) return [];
    const topRow: number[] = [];
    const topScore: number[] = [];
    const d = this.dim;
    const data = this.data;
    for (let r = 0; r < n; r++) {
      let s = 0;
      const off = r * d;
      for (let j = 0; j < d; j++) s += data[off + j]! * query[j]!;
      if (topRow.length === kk && s <= topScore[kk - 1]!) continue;
      // Insertion into the small sorted top-k list.
      let i = topRow.length === kk ? kk - 1 : topRow.length;
      while (i > 0 && topScore[i - 1]! < s) {
        topScore[i] = topScore[i - 1]!;
        topRow[i] = topRow[i - 1]!;
        i--;
      }
      topScore[i] = s;
      topRow[i] = r;
    }
    return topRow.map((r, i) => ({ id: this.ids[r]!, score: topScore[i]! }));
  }

  private checkDim(v: Float32Array): void {
    if (v.length !== this.dim)
      throw new EngineError('BAD_REQUEST', `Vector of length ${v.length} given to an index of dimension ${this.dim}.`, { length: v.length, dim: this.dim });
  }
}

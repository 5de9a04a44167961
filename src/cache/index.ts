// VectorIndex: the semantic cache's exact nearest-neighbour search over unit vectors kept in one
// contiguous Float32Array, scanned on the GPU (gpu-scan.ts) when large. To add an approximate scan, keep search()'s contract (exact scores, best first).

import { EngineError } from '../api/errors.js';
import type { GpuContext } from '../gpu/device.js';
import { GPU_TOPK_MAX, GpuScan, type ScanCandidates } from './gpu-scan.js';

/**
 * Rows from which searchAsync() scans on a hardware GPU. Not measured on one (none here): a CPU scan of 4096
 * rows takes ~2 ms at d=384 and ~12 ms at d=2048 (bench/cache.ts), several times a GPU's submit + readback
 * round trip, while a GPU reads the rows at hundreds of GB/s. On software adapters the GPU scan is never used:
 * on SwiftShader it was 1.2-2.6× slower than the CPU scan at every size measured, 1k to 100k rows (BENCHMARKS.md, cache section).
 */
export const GPU_SCAN_MIN_ROWS = 4096;

/** The default gpuMinRows for a device: GPU_SCAN_MIN_ROWS, or Infinity (CPU scan only) on a software adapter. */
export function defaultGpuMinRows(gpu: GpuContext): number {
  return gpu.adapter.isFallback ? Infinity : GPU_SCAN_MIN_ROWS;
}

/** Extra candidates the GPU scan hands to the exact CPU re-score beyond k, so f32 rounding cannot drop a true top-k row. */
const GPU_CANDIDATE_MARGIN = 8;

export interface VectorIndexOptions {
  /** A device to scan on; without one every search runs on the CPU. */
  gpu?: GpuContext;
  /** searchAsync() scans on the GPU from this many rows. Default defaultGpuMinRows(gpu). */
  gpuMinRows?: number;
  /**
   * How GPU candidates are picked: 'cpu' reads every score back and selects on the CPU, 'gpu' runs the
   * shader's per-thread top-k and reads back only those lists. Default 'cpu' (faster in bench/cache.ts).
   */
  gpuSelect?: 'cpu' | 'gpu';
}

/** One search result: the id given to add() and its dot product with the query (= cosine for unit vectors). */
export interface IndexHit {
  id: string;
  score: number;
}

/**
 * Brute-force inner-product search. Vectors live row-major in one Float32Array that doubles when full;
 * delete moves the last row into the hole, so rows stay packed and a scan touches only live rows.
 * With a GPU context, a GPU copy of the rows is made the first time searchAsync() sees gpuMinRows rows
 * and is then kept in step row by row (writeBuffer on add, the same swap on delete); the GPU picks
 * candidates, the CPU re-scores them exactly, so results equal search()'s.
 * @example
 *   const index = new VectorIndex(dim, 16, { gpu: ctx });
 *   index.add('a', unitVector);
 *   await index.searchAsync(query, 5); // → [{ id: 'a', score: 0.93… }]
 */
export class VectorIndex {
  readonly dim: number;
  // [capacity, dim] f32, rows [0, size) live
  private data: Float32Array;
  private ids: string[] = [];
  private readonly rowOf = new Map<string, number>();
  private readonly gpu: GpuContext | null;
  private readonly gpuMinRows: number;
  private readonly gpuSelect: 'cpu' | 'gpu';
  private scan: GpuScan | null = null;
  /** Set when a GPU scan failed: later searches stay on the CPU. */
  private gpuError: unknown = null;
  /** Bumped by every change of the rows, so a GPU result that raced a change is not used. */
  private version = 0;
  /** The largest squared norm ever added: bounds the f32 error of a GPU score. */
  private maxNormSq = 0;

  constructor(dim: number, initialCapacity = 16, opts: VectorIndexOptions = {}) {
    if (!Number.isInteger(dim) || dim <= 0) throw new EngineError('BAD_REQUEST', `VectorIndex dim must be a positive integer, got ${dim}.`, { dim });
    this.dim = dim;
    this.data = new Float32Array(dim * Math.max(1, initialCapacity));
    this.gpu = opts.gpu ?? null;
    this.gpuMinRows = opts.gpuMinRows ?? (this.gpu ? defaultGpuMinRows(this.gpu) : Infinity);
    this.gpuSelect = opts.gpuSelect ?? 'cpu';
    if (!(this.gpuMinRows >= 1)) throw new EngineError('BAD_REQUEST', `gpuMinRows must be ≥ 1, got ${this.gpuMinRows}.`, { gpuMinRows: this.gpuMinRows });
  }

  /** True while a GPU copy of the rows exists (searchAsync scans there). */
  get onGpu(): boolean {
    return this.scan !== null;
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
    let normSq = 0;
    for (let j = 0; j < vec.length; j++) normSq += vec[j]! * vec[j]!;
    this.maxNormSq = Math.max(this.maxNormSq, normSq);
    this.version++;
    if (this.scan) {
      if (this.scan.reserve(row + 1)) this.scan.write(row, this.data.subarray(row * this.dim, (row + 1) * this.dim));
      else this.dropScan(); // over one binding's size: the CPU scans from here
    }
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
      this.scan?.write(row, this.data.subarray(row * this.dim, (row + 1) * this.dim));
    }
    this.ids.pop();
    this.rowOf.delete(id);
    this.version++;
    if (this.ids.length === 0) this.dropScan();
    return true;
  }

  /** Frees the GPU copy, if any; the index keeps working on the CPU (and makes a new copy when large again). */
  destroy(): void {
    this.dropScan();
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
    for (let r = 0; r < n; r++) {
      const s = this.dot(r, query);
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

  /**
   * search(), on the GPU once the index has gpuMinRows rows and a GPU context: the GPU scores every row
   * in f32 and picks k + 8 candidates, the CPU re-scores them exactly. The result equals search()'s;
   * where it cannot be sure (near-ties at the candidate boundary, rows changed during the scan, a GPU
   * error) it runs search() itself.
   */
  async searchAsync(query: Float32Array, k: number): Promise<IndexHit[]> {
    this.checkDim(query);
    const n = this.ids.length;
    const kk = Math.min(Math.max(0, Math.floor(k)), n);
    if (kk === 0 || !this.gpu || n < this.gpuMinRows || this.gpuError !== null || this.gpu.lost) return this.search(query, k);
    const scan = this.ensureScan(n);
    if (!scan) return this.search(query, k);
    const kc = Math.min(n, kk + GPU_CANDIDATE_MARGIN);
    const version = this.version;
    let cands: ScanCandidates;
    try {
      cands = this.gpuSelect === 'gpu' && kc <= GPU_TOPK_MAX ? await scan.topK(query, n, kc) : selectTop(await scan.scoresOf(query, n), kc);
    } catch (e) {
      this.gpuError = e;
      this.dropScan();
      return this.search(query, k);
    }
    if (version !== this.version) return this.search(query, k);
    return this.rescore(query, cands, kk, kc) ?? this.search(query, k);
  }

  /** Exact top `kk` of the candidates, or null when a row outside them might belong there. */
  private rescore(query: Float32Array, cands: ScanCandidates, kk: number, kc: number): IndexHit[] | null {
    // The kc-th best GPU score: every row left out scores at most this on the GPU.
    const order = Array.from(cands.scores.keys()).sort((a, b) => cands.scores[b]! - cands.scores[a]! || cands.rows[a]! - cands.rows[b]!);
    const top = order.slice(0, kc);
    const exact = top.map((i) => ({ row: cands.rows[i]!, score: this.dot(cands.rows[i]!, query) }));
    exact.sort((a, b) => b.score - a.score || a.row - b.row);
    if (top.length < this.ids.length) {
      const boundary = cands.scores[top[top.length - 1]!]!;
      let qNormSq = 0;
      for (let j = 0; j < query.length; j++) qNormSq += query[j]! * query[j]!;
      // An f32 dot product of length d is within about d·2^-24·|q||v| of the exact one; twice that, both sides.
      const eps = 2 * (this.dim + 2) * 2 ** -23 * Math.sqrt(qNormSq * this.maxNormSq);
      if (!(exact[kk - 1]!.score > boundary + eps)) return null;
    }
    return exact.slice(0, kk).map((h) => ({ id: this.ids[h.row]!, score: h.score }));
  }

  private ensureScan(n: number): GpuScan | null {
    if (this.scan) return this.scan;
    const scan = new GpuScan(this.gpu!, this.dim, this.capacity);
    if (!scan.reserve(n)) {
      scan.destroy();
      return null;
    }
    scan.write(0, this.data.subarray(0, n * this.dim));
    this.scan = scan;
    return scan;
  }

  private dropScan(): void {
    this.scan?.destroy();
    this.scan = null;
  }

  /** The exact (float64-accumulated) dot product of row `r` with `query`; search() and the GPU re-score share it. */
  private dot(r: number, query: Float32Array): number {
    const d = this.dim;
    const data = this.data;
    const off = r * d;
    let s = 0;
    for (let j = 0; j < d; j++) s += data[off + j]! * query[j]!;
    return s;
  }

  private checkDim(v: Float32Array): void {
    if (v.length !== this.dim)
      throw new EngineError('BAD_REQUEST', `Vector of length ${v.length} given to an index of dimension ${this.dim}.`, { length: v.length, dim: this.dim });
  }
}

/** The `kc` best of all scores (ties: lower row first), as candidates. */
function selectTop(scores: Float32Array, kc: number): ScanCandidates {
  const rows: number[] = [];
  const top: number[] = [];
  for (let r = 0; r < scores.length; r++) {
    const s = scores[r]!;
    if (top.length === kc && s <= top[kc - 1]!) continue;
    let i = top.length === kc ? kc - 1 : top.length;
    while (i > 0 && top[i - 1]! < s) {
      top[i] = top[i - 1]!;
      rows[i] = rows[i - 1]!;
      i--;
    }
    top[i] = s;
    rows[i] = r;
  }
  return { rows: Uint32Array.from(rows), scores: Float32Array.from(top) };
}

// GpuScan: the GPU copy of a VectorIndex's rows and the scan over it (shaders/cache-scan.wgsl): the
// query's dot product with every live row, read back whole or as per-thread top-k lists. VectorIndex owns it.

import { COPY_DST, MAP_READ, UNIFORM, grid, storageBuffer } from '../gpu/buffers.js';
import { mapRead, type GpuContext } from '../gpu/device.js';

/** Largest k the top_k entry point keeps per thread (KMAX in the shader). */
export const GPU_TOPK_MAX = 32;
/** Threads of the top_k pass: each owns a slice of ceil(n / 256) scores. */
const TOPK_THREADS = 256;
const WG = 64;

/** What a scan read back: candidate rows and their GPU (f32) scores, not yet in order. */
export interface ScanCandidates {
  rows: Uint32Array;
  scores: Float32Array;
}

export class GpuScan {
  readonly dim: number;
  /** Most rows one binding of the adapter can hold. */
  readonly maxRows: number;
  private readonly ctx: GpuContext;
  private readonly rowsPipeline: GPUComputePipeline;
  private readonly topKPipeline: GPUComputePipeline;
  // [capacityRows, dim] f32
  private data: GPUBuffer;
  private capacityRows: number;
  // [dim] f32
  private readonly query: GPUBuffer;
  // [scoreRows] f32
  private scores: GPUBuffer;
  private scoreRows = 0;
  // [TOPK_THREADS, GPU_TOPK_MAX] u32 then the same in f32
  private readonly candRow: GPUBuffer;
  private readonly candScore: GPUBuffer;
  private readonly params: GPUBuffer;
  private scoreBg: GPUBindGroup | null = null;
  private topKBg: GPUBindGroup | null = null;
  private readonly staging: GPUBuffer[] = [];
  private destroyed = false;
  private readonly vec4: boolean;

  constructor(ctx: GpuContext, dim: number, rows: number) {
    this.ctx = ctx;
    this.dim = dim;
    const maxBytes = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
    this.maxRows = Math.floor(maxBytes / (dim * 4));
    // score_rows4 (vec4 loads) is 1.65× score_rows on SwiftShader (n = 4096, d = 2048); score_split is for GPUs.
    this.vec4 = ctx.tuning.barrierFree && dim % 4 === 0;
    const entry = ctx.tuning.barrierFree ? (this.vec4 ? 'score_rows4' : 'score_rows') : 'score_split';
    this.rowsPipeline = ctx.pipelines.get('cache-scan', entry);
    this.topKPipeline = ctx.pipelines.get('cache-scan', 'top_k');
    const d = ctx.device;
    this.capacityRows = Math.min(this.maxRows, Math.max(16, rows));
    this.data = storageBuffer(d, this.capacityRows * dim * 4, 'cache-scan.vectors');
    this.query = storageBuffer(d, dim * 4, 'cache-scan.query');
    this.scores = storageBuffer(d, 16, 'cache-scan.scores');
    this.candRow = storageBuffer(d, TOPK_THREADS * GPU_TOPK_MAX * 4, 'cache-scan.candRow');
    this.candScore = storageBuffer(d, TOPK_THREADS * GPU_TOPK_MAX * 4, 'cache-scan.candScore');
    this.params = d.createBuffer({ label: 'cache-scan.params', size: 16, usage: UNIFORM | COPY_DST });
  }

  /** Rows the GPU buffer holds before it grows. */
  get capacity(): number {
    return this.capacityRows;
  }

  /** Makes room for `rows` rows (doubling, up to maxRows), keeping the rows already there. False when over maxRows. */
  reserve(rows: number): boolean {
    if (rows <= this.capacityRows) return true;
    if (rows > this.maxRows) return false;
    let cap = this.capacityRows;
    while (cap < rows) cap *= 2;
    cap = Math.min(cap, this.maxRows);
    const grown = storageBuffer(this.ctx.device, cap * this.dim * 4, 'cache-scan.vectors');
    const enc = this.ctx.device.createCommandEncoder();
    enc.copyBufferToBuffer(this.data, 0, grown, 0, this.capacityRows * this.dim * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    this.data.destroy(); // Dawn keeps it alive until the copy above has run
    this.data = grown;
    this.capacityRows = cap;
    this.scoreBg = null;
    return true;
  }

  /** Writes rows `row`, `row + 1`, ... from `values` ([rows, dim] f32). */
  write(row: number, values: Float32Array): void {
    this.ctx.device.queue.writeBuffer(this.data, row * this.dim * 4, values.buffer, values.byteOffset, values.byteLength);
  }

  /** Every score of the first `n` rows with `query`, in row order (f32 dot products). */
  async scoresOf(query: Float32Array, n: number): Promise<Float32Array> {
    const enc = this.encodeScores(query, n, 0);
    return new Float32Array(await this.readBack(enc, this.scores, n * 4));
  }

  /**
   * The rows of each thread's top `k` (k ≤ GPU_TOPK_MAX) over the first `n` rows: at most 256·k candidates
   * that contain the global top k. Rows of empty slots are dropped.
   */
  async topK(query: Float32Array, n: number, k: number): Promise<ScanCandidates> {
    const slice = Math.ceil(n / TOPK_THREADS);
    const enc = this.encodeScores(query, n, k, slice);
    this.topKBg ??= this.ctx.device.createBindGroup({
      layout: this.topKPipeline.getBindGroupLayout(0),
      entries: [
        { binding: 2, resource: { buffer: this.scores } },
        { binding: 3, resource: { buffer: this.params } },
        { binding: 4, resource: { buffer: this.candRow } },
        { binding: 5, resource: { buffer: this.candScore } },
      ],
    });
    const pass = enc.beginComputePass({ label: 'cache-scan.top_k' });
    pass.setPipeline(this.topKPipeline);
    pass.setBindGroup(0, this.topKBg);
    pass.dispatchWorkgroups(TOPK_THREADS / WG);
    pass.end();
    const threads = Math.ceil(n / slice);
    const bytes = threads * k * 4;
    const staging = this.takeStaging(2 * bytes);
    enc.copyBufferToBuffer(this.candRow, 0, staging, 0, bytes);
    enc.copyBufferToBuffer(this.candScore, 0, staging, bytes, bytes);
    const ab = await this.mapStaging(enc, staging, 2 * bytes);
    const rowsAll = new Uint32Array(ab, 0, threads * k);
    const scoresAll = new Float32Array(ab, bytes, threads * k);
    let m = 0;
    for (let i = 0; i < rowsAll.length; i++) if (rowsAll[i]! < n) m++;
    const rows = new Uint32Array(m);
    const scores = new Float32Array(m);
    m = 0;
    for (let i = 0; i < rowsAll.length; i++)
      if (rowsAll[i]! < n) {
        rows[m] = rowsAll[i]!;
        scores[m++] = scoresAll[i]!;
      }
    return { rows, scores };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of [this.data, this.query, this.scores, this.candRow, this.candScore, this.params, ...this.staging]) b.destroy();
    this.staging.length = 0;
  }

  /** Writes the query and params and encodes the score pass; returns the open encoder. */
  private encodeScores(query: Float32Array, n: number, k: number, slice = 0): GPUCommandEncoder {
    const d = this.ctx.device;
    if (n > this.scoreRows) {
      this.scores.destroy();
      this.scoreRows = Math.max(n, 2 * this.scoreRows);
      this.scores = storageBuffer(d, this.scoreRows * 4, 'cache-scan.scores');
      this.scoreBg = null;
      this.topKBg = null;
    }
    this.scoreBg ??= d.createBindGroup({
      layout: this.rowsPipeline.getBindGroupLayout(0),
      entries: [
        { binding: this.vec4 ? 6 : 0, resource: { buffer: this.data } },
        { binding: this.vec4 ? 7 : 1, resource: { buffer: this.query } },
        { binding: 2, resource: { buffer: this.scores } },
        { binding: 3, resource: { buffer: this.params } },
      ],
    });
    d.queue.writeBuffer(this.query, 0, query.buffer, query.byteOffset, query.byteLength);
    d.queue.writeBuffer(this.params, 0, new Uint32Array([n, this.dim, k, slice]));
    const enc = d.createCommandEncoder({ label: 'cache-scan' });
    const pass = enc.beginComputePass({ label: 'cache-scan.score' });
    pass.setPipeline(this.rowsPipeline);
    pass.setBindGroup(0, this.scoreBg);
    const rowsPerWg = this.ctx.tuning.barrierFree ? WG : WG / 8;
    const [x, y] = grid(Math.ceil(n / rowsPerWg), this.ctx.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(x, y);
    pass.end();
    return enc;
  }

  private async readBack(enc: GPUCommandEncoder, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    const staging = this.takeStaging(bytes);
    enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
    return this.mapStaging(enc, staging, bytes);
  }

  /** A mappable buffer of at least `bytes` from the free list (lookups in flight each hold one). */
  private takeStaging(bytes: number): GPUBuffer {
    const i = this.staging.findIndex((b) => b.size >= bytes);
    if (i >= 0) return this.staging.splice(i, 1)[0]!;
    return this.ctx.device.createBuffer({ label: 'cache-scan.staging', size: Math.max(256, bytes), usage: MAP_READ | COPY_DST });
  }

  private async mapStaging(enc: GPUCommandEncoder, staging: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.ctx.device.queue.submit([enc.finish()]);
    await mapRead(this.ctx, staging, 0, bytes);
    const out = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    if (this.destroyed) staging.destroy();
    else if (this.staging.length < 4) this.staging.push(staging);
    else staging.destroy();
    return out;
  }
}

// Host side of shaders/matmul.wgsl: Y = X·Wᵀ (+bias) (+Y) against a weight in its GPU layout.
// On GPUs, M <= MATVEC_MAX_M uses the matvec (one pipeline per bucket of M, so a weight is read
// once for up to 16 tokens: batched decode and verified token trees), larger M 64x64 tiles through
// workgroup memory. On CPU-backed adapters (GpuTuning.barrierFree) every M takes the barrier-free
// 8-row kernels: matvec_rows for one token, matmul_rows (8 rows x 2, 4 or 8 tokens a thread) for more.

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';

/** A weight matrix on the GPU: N rows of K, in the layout of src/model/quant.ts gpuLayout(). */
export interface GpuWeight {
  buffer: GPUBuffer;
  type: number;
  /** Row length (ggml ne0). */
  K: number;
  /** Number of rows (ggml ne1). */
  N: number;
  scaleOffsetBytes: number;
}

/** The matvec's pipelines by the most rows of X each takes (MV_M in shaders/matmul.wgsl); the largest is MATVEC_MAX_M. */
export const MATVEC_BUCKETS = [1, 4, 8, 16] as const;
export const MATVEC_MAX_M = MATVEC_BUCKETS[MATVEC_BUCKETS.length - 1]!;

export interface MatmulOptions {
  bias?: GPUBuffer;
  accumulate?: boolean;
  /** Fixed row count of X (otherwise the step's token count). */
  mFixed?: number;
  /** Rows of X = the step's output row count (the lm head over gathered rows); encode() gets that count. */
  rowsFromOut?: boolean;
  /** Row stride of Y in elements (default N): this matmul fills columns [yOffset, yOffset + N). */
  yStride?: number;
  yOffset?: number;
}

export class Matmul {
  private readonly params: GPUBuffer;
  /** Matvec buckets: the first with M <= maxM takes a step; its pipeline and bind group are made on first use. */
  private readonly vec: { maxM: number; made: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } | null }[];
  private readonly makeVec: (maxM: number) => { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup };
  private readonly bgTiled: GPUBindGroup;
  private readonly pTiled: GPUComputePipeline;
  private readonly rowsPerWorkgroup: number;
  private readonly barrierFree: boolean;
  /** matvec_rows (CPU-backed adapters, M = 1); null on GPUs. */
  private readonly rowsVec: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup } | null;
  /** matmul_rows by tokens a thread (MR_T: 2, 4, 8), made at first use (CPU-backed adapters). */
  private readonly rowsMat = new Map<number, { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup }>();
  private readonly makeRowsMat: (tokens: number) => { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup };

  constructor(
    ctx: GpuContext,
    readonly w: GpuWeight,
    x: GPUBuffer,
    y: GPUBuffer,
    step: GPUBuffer,
    readonly opts: MatmulOptions = {},
  ) {
    const flags = (opts.bias ? 1 : 0) | (opts.accumulate ? 2 : 0) | (opts.rowsFromOut ? 4 : 0);
    this.params = uniformFrom(
      ctx.device,
      [w.K, w.N, w.scaleOffsetBytes / 4, flags, opts.mFixed ?? 0, 0, opts.yStride ?? 0, opts.yOffset ?? 0],
      'matmul.params',
    );
    const constants = { WTYPE: w.type };
    this.barrierFree = ctx.tuning.barrierFree;
    const buckets: readonly number[] = this.barrierFree ? [] : MATVEC_BUCKETS;
    const vecVariant = (maxM: number): ['matmul-subgroups' | 'matmul', string, Record<string, number>] =>
      ctx.tuning.matvecSubgroups ? ['matmul-subgroups', 'matvec_subgroup', { ...constants, MV_M: maxM }] : ['matmul', 'matvec', { ...constants, MV_M: maxM }];
    // On a real GPU every bucket compiles in the background now, not at its first step (on an
    // H100 the serving run's first 2-, 8- and 16-chat rows, each the first use of a bucket, had
    // 0.12-0.17 s TTFT where 4 chats, reusing one, had 0.01-0.02 s). Not on CPU-backed adapters:
    // the tests run the GPU variants on SwiftShader, where every background compile would compete
    // with them for the cores.
    if (!ctx.adapter.isFallback) for (const maxM of buckets) ctx.pipelines.prewarm(...vecVariant(maxM));
    // Dispatch for the largest subgroup: a smaller one covers more rows per workgroup.
    this.rowsPerWorkgroup = ctx.tuning.matvecSubgroups ? Math.max(1, Math.floor(64 / ctx.tuning.subgroupMaxSize)) : 8; // MV_WG / MV_TPR
    this.pTiled = ctx.pipelines.get('matmul', this.barrierFree ? 'matmul_rows' : 'matmul_tiled', this.barrierFree ? { ...constants, MR_T: 8 } : constants);
    // The bias binding is statically used, so something must be bound: x stands in when unused.
    const bindGroup = (p: GPUComputePipeline, vec4Weights: boolean): GPUBindGroup =>
      ctx.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: w.buffer } },
          { binding: 1, resource: { buffer: x } },
          { binding: 2, resource: { buffer: y } },
          { binding: 3, resource: { buffer: this.params } },
          { binding: 4, resource: { buffer: opts.bias ?? x } },
          { binding: 5, resource: { buffer: step } },
          // The matvecs and the barrier-free kernels also read the weight as vec4s; matmul_tiled does not.
          ...(vec4Weights ? [{ binding: 7, resource: { buffer: w.buffer } }] : []),
        ],
      });
    this.vec = buckets.map((maxM) => ({ maxM, made: null }));
    this.makeVec = (maxM) => {
      const pipeline = ctx.pipelines.get(...vecVariant(maxM));
      return { pipeline, bindGroup: bindGroup(pipeline, true) };
    };
    this.bgTiled = bindGroup(this.pTiled, this.barrierFree);
    const pRowsVec = this.barrierFree ? ctx.pipelines.get('matmul', 'matvec_rows', constants) : null;
    this.rowsVec = pRowsVec ? { pipeline: pRowsVec, bindGroup: bindGroup(pRowsVec, true) } : null;
    if (this.barrierFree) this.rowsMat.set(8, { pipeline: this.pTiled, bindGroup: this.bgTiled });
    this.makeRowsMat = (tokens) => {
      const pipeline = ctx.pipelines.get('matmul', 'matmul_rows', { ...constants, MR_T: tokens });
      return { pipeline, bindGroup: bindGroup(pipeline, true) };
    };
  }

  /** Record the dispatch for `numTokens` rows of X (ignored when mFixed is set). */
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    const M = this.opts.mFixed ?? numTokens;
    if (this.rowsVec && M === 1) {
      // matvec_rows: 16 threads of 8 rows per workgroup.
      pass.setPipeline(this.rowsVec.pipeline);
      pass.setBindGroup(0, this.rowsVec.bindGroup);
      const [gx, gy] = grid(Math.ceil(this.w.N / 128));
      pass.dispatchWorkgroups(gx, gy);
      return;
    }
    const bucket = this.vec.find((v) => M <= v.maxM);
    if (bucket) {
      const vec = (bucket.made ??= this.makeVec(bucket.maxM));
      pass.setPipeline(vec.pipeline);
      pass.setBindGroup(0, vec.bindGroup);
      const [gx, gy] = grid(Math.ceil(this.w.N / this.rowsPerWorkgroup));
      pass.dispatchWorkgroups(gx, gy);
    } else if (this.barrierFree) {
      // matmul_rows: 8x8 threads of 8 rows x T tokens, T the smallest of 2, 4, 8 that holds M.
      const T = M <= 2 ? 2 : M <= 4 ? 4 : 8;
      let k = this.rowsMat.get(T);
      if (!k) this.rowsMat.set(T, (k = this.makeRowsMat(T)));
      pass.setPipeline(k.pipeline);
      pass.setBindGroup(0, k.bindGroup);
      pass.dispatchWorkgroups(Math.ceil(this.w.N / 64), Math.ceil(M / (8 * T)));
    } else {
      // 64 rows x 64 tokens per workgroup: 16x16 threads of 4x4.
      pass.setPipeline(this.pTiled);
      pass.setBindGroup(0, this.bgTiled);
      pass.dispatchWorkgroups(Math.ceil(this.w.N / 64), Math.ceil(M / 64));
    }
  }
}

/** Embedding lookup: Y[m, :] = dequant(W[tokenIds[m], :]). */
export class GatherRows {
  private readonly params: GPUBuffer;
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;

  constructor(ctx: GpuContext, w: GpuWeight, tokenIds: GPUBuffer, y: GPUBuffer, step: GPUBuffer) {
    this.params = uniformFrom(ctx.device, [w.K, w.N, w.scaleOffsetBytes / 4, 0, 0, 0, 0, 0], 'gather.params');
    this.pipeline = ctx.pipelines.get('matmul', 'gather_rows', { WTYPE: w.type });
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: w.buffer } },
        { binding: 2, resource: { buffer: y } },
        { binding: 3, resource: { buffer: this.params } },
        { binding: 5, resource: { buffer: step } },
        { binding: 6, resource: { buffer: tokenIds } },
      ],
    });
  }

  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    pass.dispatchWorkgroups(numTokens);
  }
}

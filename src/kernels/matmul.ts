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

type Shader = 'matmul' | 'matmul-subgroups';

interface Kernel {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
}

export class Matmul {
  private readonly params: GPUBuffer;
  private readonly barrierFree: boolean;
  /** The GPU matvec: one subgroup a row where the adapter has subgroups, else 8 threads a row. */
  private readonly matvec: [Shader, string];
  /** Rows per workgroup of the GPU matvec (MV_WG / threads per row, or 64 / the largest subgroup). */
  private readonly rowsPerWorkgroup: number;
  /** Pipelines and their bind groups by entry point, then variant (MR_T, MV_M bucket or 0), each made at first use. */
  private readonly kernels = new Map<string, Map<number, Kernel>>();
  private readonly make: (shader: Shader, entry: string, constants: Record<string, number>) => Kernel;

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
    this.barrierFree = ctx.tuning.barrierFree;
    this.matvec = ctx.tuning.matvecSubgroups ? ['matmul-subgroups', 'matvec_subgroup'] : ['matmul', 'matvec'];
    // Dispatch for the largest subgroup: a smaller one covers more rows per workgroup.
    this.rowsPerWorkgroup = ctx.tuning.matvecSubgroups ? Math.max(1, Math.floor(64 / ctx.tuning.subgroupMaxSize)) : 8; // MV_WG / MV_TPR
    const bindGroup = (p: GPUComputePipeline, entry: string): GPUBindGroup =>
      ctx.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: w.buffer } },
          { binding: 1, resource: { buffer: x } },
          { binding: 2, resource: { buffer: y } },
          { binding: 3, resource: { buffer: this.params } },
          // The bias binding is statically used, so something must be bound: x stands in when unused.
          { binding: 4, resource: { buffer: opts.bias ?? x } },
          { binding: 5, resource: { buffer: step } },
          // Every entry point but matmul_tiled also reads the weight as vec4s.
          ...(entry === 'matmul_tiled' ? [] : [{ binding: 7, resource: { buffer: w.buffer } }]),
        ],
      });
    this.make = (shader, entry, constants) => {
      const pipeline = ctx.pipelines.get(shader, entry, { WTYPE: w.type, ...constants });
      return { pipeline, bindGroup: bindGroup(pipeline, entry) };
    };
    // On a real GPU every matvec bucket compiles in the background now, not at its first step (on
    // an H100 the serving run's first 2-, 8- and 16-chat rows, each the first use of a bucket, had
    // 0.12-0.17 s TTFT where 4 chats, reusing one, had 0.01-0.02 s). Not on CPU-backed adapters:
    // the tests run the GPU variants on SwiftShader, where every background compile would compete
    // with them for the cores.
    if (!this.barrierFree && !ctx.adapter.isFallback) for (const maxM of MATVEC_BUCKETS) ctx.pipelines.prewarm(...this.matvec, { WTYPE: w.type, MV_M: maxM });
    // The kernels every model uses, compiled at load: prefill, and on CPU-backed adapters decode.
    if (this.barrierFree) {
      this.kernel('matmul', 'matvec_rows', 0, null);
      this.kernel('matmul', 'matmul_rows', 8, 'MR_T');
    } else this.kernel('matmul', 'matmul_tiled', 0, null);
  }

  /**
   * The kernel of `entry` in its `variant`, the value of the override `constant` (none: variant 0).
   * Nothing is allocated once it is made: encode() runs for every matmul of every step.
   */
  private kernel(shader: Shader, entry: string, variant: number, constant: 'MV_M' | 'MR_T' | null): Kernel {
    let byVariant = this.kernels.get(entry);
    if (!byVariant) this.kernels.set(entry, (byVariant = new Map<number, Kernel>()));
    let k = byVariant.get(variant);
    if (!k) byVariant.set(variant, (k = this.make(shader, entry, constant ? { [constant]: variant } : {})));
    return k;
  }

  /** Record the dispatch for `numTokens` rows of X (ignored when mFixed is set). */
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    const M = this.opts.mFixed ?? numTokens;
    const N = this.w.N;
    let k: Kernel;
    let groups: [number, number];
    if (this.barrierFree && M === 1) {
      // matvec_rows: 16 threads of 8 rows per workgroup.
      k = this.kernel('matmul', 'matvec_rows', 0, null);
      groups = grid(Math.ceil(N / 128));
    } else if (this.barrierFree) {
      // matmul_rows: 8x8 threads of 8 rows x T tokens, T the smallest of 2, 4, 8 that holds M.
      const T = M <= 2 ? 2 : M <= 4 ? 4 : 8;
      k = this.kernel('matmul', 'matmul_rows', T, 'MR_T');
      groups = [Math.ceil(N / 64), Math.ceil(M / (8 * T))];
    } else if (M <= MATVEC_MAX_M) {
      // The GPU matvec: the smallest bucket that holds M.
      const bucket = MATVEC_BUCKETS.find((b) => M <= b)!;
      k = this.kernel(this.matvec[0], this.matvec[1], bucket, 'MV_M');
      groups = grid(Math.ceil(N / this.rowsPerWorkgroup));
    } else {
      // 64 rows x 64 tokens per workgroup: 16x16 threads of 4x4.
      k = this.kernel('matmul', 'matmul_tiled', 0, null);
      groups = [Math.ceil(N / 64), Math.ceil(M / 64)];
    }
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, k.bindGroup);
    pass.dispatchWorkgroups(...groups);
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

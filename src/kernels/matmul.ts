// Host side of shaders/matmul.wgsl: Y = X·Wᵀ (+bias) (+Y) against a weight in its GPU layout.
// M <= MATVEC_MAX_M uses the matvec, larger M a prefill kernel: 64x64 tiles through workgroup
// memory on GPUs, barrier-free 4x4 register tiles on CPU-backed adapters (see GpuTuning).

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

export const MATVEC_MAX_M = 4;

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
  private readonly bgVec: GPUBindGroup;
  private readonly bgTiled: GPUBindGroup;
  private readonly pVec: GPUComputePipeline;
  private readonly pTiled: GPUComputePipeline;
  private readonly rowsPerWorkgroup: number;
  private readonly barrierFree: boolean;
  /** Largest M the matvec takes: on CPU-backed adapters only 1 (matmul_regs dequantizes once for up to 8 tokens). */
  private readonly matvecMaxM: number;

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
    if (ctx.tuning.matvecSubgroups) {
      // Dispatch for the largest subgroup: a smaller one covers more rows per workgroup.
      this.rowsPerWorkgroup = Math.max(1, Math.floor(64 / ctx.tuning.subgroupMaxSize));
      this.pVec = ctx.pipelines.get('matmul-subgroups', 'matvec_subgroup', constants);
    } else {
      this.rowsPerWorkgroup = 64 / ctx.tuning.matvecThreadsPerRow;
      this.pVec = ctx.pipelines.get('matmul', 'matvec', { ...constants, MV_TPR: ctx.tuning.matvecThreadsPerRow });
    }
    this.barrierFree = ctx.tuning.barrierFree;
    this.matvecMaxM = this.barrierFree ? 1 : MATVEC_MAX_M;
    this.pTiled = ctx.pipelines.get('matmul', this.barrierFree ? 'matmul_regs' : 'matmul_tiled', constants);
    // The bias binding is statically used, so something must be bound: x stands in when unused.
    const bindGroup = (p: GPUComputePipeline): GPUBindGroup =>
      ctx.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: w.buffer } },
          { binding: 1, resource: { buffer: x } },
          { binding: 2, resource: { buffer: y } },
          { binding: 3, resource: { buffer: this.params } },
          { binding: 4, resource: { buffer: opts.bias ?? x } },
          { binding: 5, resource: { buffer: step } },
          // load32 reads the weight as vec4s: the matvecs and matmul_regs use it, matmul_tiled does not.
          ...(p === this.pVec || this.barrierFree ? [{ binding: 7, resource: { buffer: w.buffer } }] : []),
        ],
      });
    this.bgVec = bindGroup(this.pVec);
    this.bgTiled = bindGroup(this.pTiled);
  }

  /** Record the dispatch for `numTokens` rows of X (ignored when mFixed is set). */
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    const M = this.opts.mFixed ?? numTokens;
    if (M <= this.matvecMaxM) {
      pass.setPipeline(this.pVec);
      pass.setBindGroup(0, this.bgVec);
      const [gx, gy] = grid(Math.ceil(this.w.N / this.rowsPerWorkgroup));
      pass.dispatchWorkgroups(gx, gy);
    } else {
      pass.setPipeline(this.pTiled);
      pass.setBindGroup(0, this.bgTiled);
      // matmul_tiled covers 64 rows x 64 tokens per workgroup; matmul_regs' 8x8 threads own 4-row x
      // 8-token tiles: 32 rows x 64 tokens.
      pass.dispatchWorkgroups(Math.ceil(this.w.N / (this.barrierFree ? 32 : 64)), Math.ceil(M / 64));
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

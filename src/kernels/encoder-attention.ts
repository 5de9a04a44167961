// Host side of shaders/encoder-attention.wgsl: bidirectional attention of one sequence over its own
// packed q|k|v rows (encoders run one sequence per step, so no KV cache and no mask are needed).

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';

export interface EncoderAttentionShape {
  numHeads: number;
  headDim: number;
  /** Row stride of the qkv buffer in elements (3 · numHeads · headDim for a fused q|k|v row). */
  qkvStride: number;
  /** Column of K's head 0 and of V's head 0 within a row. */
  kOffset: number;
  vOffset: number;
}

export class EncoderAttention {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  private readonly barrierFree: boolean;
  private readonly numHeads: number;
  constructor(ctx: GpuContext, qkv: GPUBuffer, out: GPUBuffer, step: GPUBuffer, s: EncoderAttentionShape) {
    if (s.headDim > 256) throw new Error(`hearth internal error: encoder attention head size ${s.headDim} > 256`);
    this.numHeads = s.numHeads;
    const params = uniformFrom(
      ctx.device,
      [s.numHeads, s.headDim, { f: 1 / Math.sqrt(s.headDim) }, s.qkvStride, s.kOffset, s.vOffset, 0, 0],
      'encoder-attention.params',
    );
    this.barrierFree = ctx.tuning.barrierFree;
    this.pipeline = ctx.pipelines.get('encoder-attention', this.barrierFree ? 'attend_rows' : 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: qkv } },
        { binding: 1, resource: { buffer: out } },
        { binding: 2, resource: { buffer: params } },
        { binding: 3, resource: { buffer: step } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    if (this.barrierFree) {
      const [gx, gy] = grid(Math.ceil((numTokens * this.numHeads) / 64));
      pass.dispatchWorkgroups(gx, gy);
    } else pass.dispatchWorkgroups(this.numHeads, numTokens);
  }
}

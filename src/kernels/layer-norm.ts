// Host side of shaders/layer-norm.wgsl: LayerNorm with weight and bias over the step's rows (BERT's norms).
// Workgroup per row on GPUs, thread per row on CPU-backed adapters (GpuTuning.barrierFree).

import type { GpuContext } from '../gpu/device.js';
import { uniformFrom } from '../gpu/buffers.js';

export class LayerNorm {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  private readonly barrierFree: boolean;
  /** x and y must be different buffers. */
  constructor(ctx: GpuContext, x: GPUBuffer, weight: GPUBuffer, bias: GPUBuffer, y: GPUBuffer, step: GPUBuffer, D: number, eps: number) {
    const params = uniformFrom(ctx.device, [D, { f: eps }, 0, 0], 'layer-norm.params');
    this.barrierFree = ctx.tuning.barrierFree;
    this.pipeline = ctx.pipelines.get('layer-norm', this.barrierFree ? 'rows' : 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: x } },
        { binding: 1, resource: { buffer: weight } },
        { binding: 2, resource: { buffer: bias } },
        { binding: 3, resource: { buffer: y } },
        { binding: 4, resource: { buffer: params } },
        { binding: 5, resource: { buffer: step } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, rows: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    pass.dispatchWorkgroups(this.barrierFree ? Math.ceil(rows / 64) : rows);
  }
}

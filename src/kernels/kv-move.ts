// Host side of shaders/kv-move.wgsl: after a speculative step's verification, move each tree's
// accepted path to consecutive slots of one layer's paged K/V cache (one instance per layer).

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';
import { blockShift } from './attention.js';

export class KvMove {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  constructor(
    ctx: GpuContext,
    kCache: GPUBuffer,
    vCache: GPUBuffer,
    tables: GPUBuffer,
    /** The verifier's output (src/spec/verify.ts VERIFY_OUT_WORDS per sequence). */
    verified: GPUBuffer,
    /** [1 + sequences] vec4<u32>: [0].x the count, then (verify output row, table row, root slot, 0). */
    moves: GPUBuffer,
    private readonly kvElems: number,
    blockSize: number,
    blocksPerSeq: number,
  ) {
    const params = uniformFrom(ctx.device, [kvElems, blockShift(blockSize), blocksPerSeq, 0], 'kvMove.params');
    this.pipeline = ctx.pipelines.get('kv-move', 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: kCache } },
        { binding: 1, resource: { buffer: vCache } },
        { binding: 2, resource: { buffer: tables } },
        { binding: 3, resource: { buffer: verified } },
        { binding: 4, resource: { buffer: moves } },
        { binding: 5, resource: { buffer: params } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numSeqs: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    const [gx, gy] = grid(Math.ceil((numSeqs * this.kvElems) / 64));
    pass.dispatchWorkgroups(gx, gy);
  }
}

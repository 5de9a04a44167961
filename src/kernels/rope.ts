// Host side of shaders/rope.wgsl, plus the cos/sin table it reads (float64 on the CPU, once).
// RoPE scaling: linear (freqScale) and per-dimension frequency factors (Llama 3's rope_freqs).

import type { GpuContext } from '../gpu/device.js';
import { grid, storageFrom, uniformFrom } from '../gpu/buffers.js';
import { blockShift, type KvPaging } from './attention.js';

export interface RopeConfig {
  ropeDim: number;
  base: number;
  /** Position multiplier: 1 / linear scaling factor. */
  freqScale: number;
  /** Divisors per frequency (length ropeDim / 2), when the model ships rope_freqs. */
  freqFactors?: Float32Array;
  neox: boolean;
}

/** [maxPos, ropeDim / 2] (cos, sin) pairs as f32. */
export function ropeTable(cfg: RopeConfig, maxPos: number): Float32Array {
  const half = cfg.ropeDim / 2;
  const out = new Float32Array(maxPos * half * 2);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.pow(cfg.base, (-2 * i) / cfg.ropeDim) / (cfg.freqFactors?.[i] ?? 1);
    for (let pos = 0; pos < maxPos; pos++) {
      const theta = pos * cfg.freqScale * invFreq;
      out[(pos * half + i) * 2] = Math.cos(theta);
      out[(pos * half + i) * 2 + 1] = Math.sin(theta);
    }
  }
  return out;
}

export function ropeTableBuffer(ctx: GpuContext, cfg: RopeConfig, maxPos: number): GPUBuffer {
  return storageFrom(ctx.device, ropeTable(cfg, maxPos), 'rope.cosSin');
}

export class Rope {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  constructor(
    ctx: GpuContext,
    x: GPUBuffer,
    table: GPUBuffer,
    step: GPUBuffer,
    /** [tokens] vec4<u32>: (RoPE position, sequence row, slot, mask); only the position is read. */
    tokMeta: GPUBuffer,
    private readonly numHeads: number,
    headDim: number,
    private readonly cfg: RopeConfig,
  ) {
    const params = uniformFrom(ctx.device, [numHeads, headDim, cfg.ropeDim, cfg.neox ? 1 : 0], 'rope.params');
    this.pipeline = ctx.pipelines.get('rope', 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: x } },
        { binding: 1, resource: { buffer: table } },
        { binding: 2, resource: { buffer: params } },
        { binding: 3, resource: { buffer: step } },
        { binding: 8, resource: { buffer: tokMeta } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    const [gx, gy] = grid(Math.ceil((numTokens * this.numHeads * (this.cfg.ropeDim / 2)) / 64));
    pass.dispatchWorkgroups(gx, gy);
  }
}

/**
 * Fused RoPE and KV-cache write for a qkv row per token ([q heads | k heads | v heads]): q is
 * rotated in place, rotated k and plain v go to the token's slot in the paged cache.
 */
export class RopeQkv {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  private readonly perToken: number;
  constructor(
    ctx: GpuContext,
    qkv: GPUBuffer,
    table: GPUBuffer,
    step: GPUBuffer,
    kCache: GPUBuffer,
    vCache: GPUBuffer,
    numHeads: number,
    numKvHeads: number,
    headDim: number,
    cfg: RopeConfig,
    paging: KvPaging,
  ) {
    const params = uniformFrom(
      ctx.device,
      [numHeads, numKvHeads, headDim, cfg.ropeDim, cfg.neox ? 1 : 0, blockShift(paging.blockSize), paging.blocksPerSeq, 0],
      'rope-qkv.params',
    );
    this.perToken = numHeads * (cfg.ropeDim / 2) + 2 * numKvHeads * headDim;
    this.pipeline = ctx.pipelines.get('rope', 'rope_qkv');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 1, resource: { buffer: table } },
        { binding: 3, resource: { buffer: step } },
        { binding: 4, resource: { buffer: qkv } },
        { binding: 5, resource: { buffer: params } },
        { binding: 6, resource: { buffer: kCache } },
        { binding: 7, resource: { buffer: vCache } },
        { binding: 8, resource: { buffer: paging.tokMeta } },
        { binding: 9, resource: { buffer: paging.tables } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    const [gx, gy] = grid(Math.ceil((numTokens * this.perToken) / 64));
    pass.dispatchWorkgroups(gx, gy);
  }
}

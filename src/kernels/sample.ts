// Host side of shaders/sample.wgsl: one row of settings per output row of the step (each sequence
// samples with its own temperature, top-k/p, seed and stream position); the results (token, its
// logprob, optional top logprobs) stay on the GPU until the step's single readback.

import type { GpuContext } from '../gpu/device.js';
import { COPY_DST, STORAGE } from '../gpu/buffers.js';

export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  /** Number of top logprobs to report (0..32). */
  logprobs: number;
}

export const MAX_LOGPROBS = 32;
/** Size of the sampler's output: token, logprob, then up to 32 (id, logprob) pairs. */
export const SAMPLE_OUT_WORDS = 2 + 2 * MAX_LOGPROBS;

/** One output row's sampling: its settings and its position in the seeded random stream. */
export interface SampleRow {
  sampling: SamplingParams;
  counter: number;
}

/** Words of one row's parameters (struct Params in sample.wgsl). */
const PARAM_WORDS = 8;

/**
 * Threads per vocabulary row of the sampler and the speculative kernels (WG in sample.wgsl and
 * spec.wgsl) on CPU-backed adapters: one SIMD group of SwiftShader's, where every workgroup barrier
 * of their reductions switches fibers once per 4 threads (256 threads made it 64 switches each).
 */
export const BARRIER_FREE_ROW_THREADS = 4;

export class Sampler {
  private readonly params: GPUBuffer;
  private readonly bgSample: GPUBindGroup;
  private readonly bgTop: GPUBindGroup;
  private readonly pSample: GPUComputePipeline;
  private readonly pTop: GPUComputePipeline;
  private readonly device: GPUDevice;
  private readonly data: ArrayBuffer;

  constructor(
    ctx: GpuContext,
    logits: GPUBuffer,
    out: GPUBuffer,
    private readonly maxRows: number,
    private readonly vocab: number,
  ) {
    this.device = ctx.device;
    this.data = new ArrayBuffer(maxRows * PARAM_WORDS * 4);
    this.params = ctx.device.createBuffer({ label: 'sample.params', size: this.data.byteLength, usage: STORAGE | COPY_DST });
    const wg = { WG: ctx.tuning.barrierFree ? BARRIER_FREE_ROW_THREADS : 256 };
    this.pSample = ctx.pipelines.get('sample', 'sample', wg);
    this.pTop = ctx.pipelines.get('sample', 'top_logprobs', wg);
    const bg = (p: GPUComputePipeline): GPUBindGroup =>
      ctx.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: logits } },
          { binding: 1, resource: { buffer: out } },
          { binding: 2, resource: { buffer: this.params } },
        ],
      });
    this.bgSample = bg(this.pSample);
    this.bgTop = bg(this.pTop);
  }

  /** Write the settings of rows 0 .. rows.length - 1 (logits row r is sampled with rows[r]). */
  setRows(rows: readonly SampleRow[]): void {
    if (rows.length > this.maxRows) throw new Error(`hearth internal error: ${rows.length} sample rows, room for ${this.maxRows}`);
    const u = new Uint32Array(this.data, 0, rows.length * PARAM_WORDS);
    const f = new Float32Array(this.data, 0, rows.length * PARAM_WORDS);
    rows.forEach(({ sampling: s, counter }, r) => {
      const o = r * PARAM_WORDS;
      u[o] = this.vocab;
      f[o + 1] = s.temperature;
      u[o + 2] = s.topK > 0 && s.topK < this.vocab ? s.topK : 0;
      f[o + 3] = s.topP > 0 && s.topP < 1 ? s.topP : 1;
      u[o + 4] = s.seed >>> 0;
      u[o + 5] = Math.min(MAX_LOGPROBS, Math.max(0, s.logprobs));
      u[o + 6] = counter >>> 0;
      u[o + 7] = 0;
    });
    this.device.queue.writeBuffer(this.params, 0, this.data, 0, rows.length * PARAM_WORDS * 4);
  }

  /** Sample `rows` rows (one workgroup each); top logprobs too when any row asks for them. */
  encode(pass: GPUComputePassEncoder, rows: number, withLogprobs: boolean): void {
    pass.setPipeline(this.pSample);
    pass.setBindGroup(0, this.bgSample);
    pass.dispatchWorkgroups(rows);
    if (withLogprobs) {
      pass.setPipeline(this.pTop);
      pass.setBindGroup(0, this.bgTop);
      pass.dispatchWorkgroups(rows);
    }
  }
}

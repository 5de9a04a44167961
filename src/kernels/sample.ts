// Host side of shaders/sample.wgsl: sampling settings live in a small uniform rewritten only
// when they change; the result (token, its logprob, optional top logprobs) stays on the GPU
// until the step's single readback.

import type { GpuContext } from '../gpu/device.js';
import { COPY_DST, UNIFORM } from '../gpu/buffers.js';

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

export class Sampler {
  private readonly params: GPUBuffer;
  private readonly bgSample: GPUBindGroup;
  private readonly bgTop: GPUBindGroup;
  private readonly pSample: GPUComputePipeline;
  private readonly pTop: GPUComputePipeline;
  private last = '';
  private readonly device: GPUDevice;

  constructor(
    ctx: GpuContext,
    logits: GPUBuffer,
    out: GPUBuffer,
    step: GPUBuffer,
    private readonly vocab: number,
  ) {
    this.device = ctx.device;
    this.params = ctx.device.createBuffer({ label: 'sample.params', size: 32, usage: UNIFORM | COPY_DST });
    this.pSample = ctx.pipelines.get('sample', 'sample');
    this.pTop = ctx.pipelines.get('sample', 'top_logprobs');
    // top_logprobs does not read the step uniform, so its auto layout has no binding 3.
    const bg = (p: GPUComputePipeline, withStep: boolean): GPUBindGroup =>
      ctx.device.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: logits } },
          { binding: 1, resource: { buffer: out } },
          { binding: 2, resource: { buffer: this.params } },
          ...(withStep ? [{ binding: 3, resource: { buffer: step } }] : []),
        ],
      });
    this.bgSample = bg(this.pSample, true);
    this.bgTop = bg(this.pTop, false);
  }

  setParams(s: SamplingParams): void {
    const key = JSON.stringify(s);
    if (key === this.last) return;
    this.last = key;
    const ab = new ArrayBuffer(32);
    const u = new Uint32Array(ab);
    const f = new Float32Array(ab);
    u[0] = this.vocab;
    f[1] = s.temperature;
    u[2] = s.topK > 0 && s.topK < this.vocab ? s.topK : 0;
    f[3] = s.topP > 0 && s.topP < 1 ? s.topP : 1;
    u[4] = s.seed >>> 0;
    u[5] = Math.min(MAX_LOGPROBS, Math.max(0, s.logprobs));
    this.device.queue.writeBuffer(this.params, 0, ab);
  }

  encode(pass: GPUComputePassEncoder, withLogprobs: boolean): void {
    pass.setPipeline(this.pSample);
    pass.setBindGroup(0, this.bgSample);
    pass.dispatchWorkgroups(1);
    if (withLogprobs) {
      pass.setPipeline(this.pTop);
      pass.setBindGroup(0, this.bgTop);
      pass.dispatchWorkgroups(1);
    }
  }
}

// Shader modules and compute pipelines, created once and cached by (shader, entry, constants).
// Shader text comes from shaders/*.wgsl through shader-sources.ts.

import { EngineError } from '../api/errors.js';
import { SHADERS, type ShaderName } from './shader-sources.js';

export class PipelineCache {
  private modules = new Map<ShaderName, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();
  /** Compilations started by prewarm() and not finished yet. */
  private pending = new Map<string, Promise<void>>();

  constructor(private readonly device: GPUDevice) {}

  module(name: ShaderName): GPUShaderModule {
    let m = this.modules.get(name);
    if (!m) {
      m = this.device.createShaderModule({ label: name, code: SHADERS[name] });
      this.modules.set(name, m);
    }
    return m;
  }

  private static key(name: ShaderName, entryPoint: string, constants: Record<string, number>): string {
    return `${name}:${entryPoint}:${JSON.stringify(constants)}`;
  }

  private descriptor(name: ShaderName, entryPoint: string, constants: Record<string, number>): GPUComputePipelineDescriptor {
    return { label: PipelineCache.key(name, entryPoint, constants), layout: 'auto', compute: { module: this.module(name), entryPoint, constants } };
  }

  /** The pipeline, compiled now (blocking) unless it is cached or a prewarm has finished it. */
  get(name: ShaderName, entryPoint: string, constants: Record<string, number> = {}): GPUComputePipeline {
    const key = PipelineCache.key(name, entryPoint, constants);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.device.createComputePipeline(this.descriptor(name, entryPoint, constants));
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Start compiling a pipeline that a later get() may want, without blocking
   * (createComputePipelineAsync). Kernels with variants chosen per step (the matvec's buckets of
   * M) prewarm the ones they may meet, so the first batched step does not stall on a driver
   * compile (~0.1 s each on an H100). A failed compile is left for get() to report through the
   * usual error scopes.
   */
  prewarm(name: ShaderName, entryPoint: string, constants: Record<string, number> = {}): void {
    const key = PipelineCache.key(name, entryPoint, constants);
    if (this.pipelines.has(key) || this.pending.has(key)) return;
    const done = this.device
      .createComputePipelineAsync(this.descriptor(name, entryPoint, constants))
      .then(
        (p) => {
          if (!this.pipelines.has(key)) this.pipelines.set(key, p);
        },
        () => undefined,
      )
      .finally(() => this.pending.delete(key));
    this.pending.set(key, done);
  }

  /** Resolves when every prewarm started so far has finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.pending.values()]);
  }

  /** Compile every module and report WGSL errors as GPU_ERROR with the compiler's messages. */
  async check(name: ShaderName): Promise<void> {
    const info = await this.module(name).getCompilationInfo();
    const errs = info.messages.filter((m) => m.type === 'error');
    if (errs.length > 0)
      throw new EngineError('GPU_ERROR', `Shader ${name} failed to compile: ${errs.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join('; ')}`);
  }
}

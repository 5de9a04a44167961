// Shader modules and compute pipelines, created once and cached by (shader, entry, constants).
// Shader text comes from shaders/*.wgsl through shader-sources.ts.

import { EngineError } from '../api/errors.js';
import { SHADERS, type ShaderName } from './shader-sources.js';

export class PipelineCache {
  private modules = new Map<ShaderName, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();

  constructor(private readonly device: GPUDevice) {}

  module(name: ShaderName): GPUShaderModule {
    let m = this.modules.get(name);
    if (!m) {
      m = this.device.createShaderModule({ label: name, code: SHADERS[name] });
      this.modules.set(name, m);
    }
    return m;
  }

  get(name: ShaderName, entryPoint: string, constants: Record<string, number> = {}): GPUComputePipeline {
    const key = `${name}:${entryPoint}:${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module: this.module(name), entryPoint, constants },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Compile every module and report WGSL errors as GPU_ERROR with the compiler's messages. */
  async check(name: ShaderName): Promise<void> {
    const info = await this.module(name).getCompilationInfo();
    const errs = info.messages.filter((m) => m.type === 'error');
    if (errs.length > 0)
      throw new EngineError('GPU_ERROR', `Shader ${name} failed to compile: ${errs.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join('; ')}`);
  }
}

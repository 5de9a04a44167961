// GPU device acquisition for the browser (navigator.gpu) and Node (the `webgpu` package, see
// device-node.ts). Asks for the adapter's full buffer limits and the optional features hearth uses.

import { EngineError } from '../api/errors.js';
import { PipelineCache } from './pipelines.js';

export interface GpuFeatures {
  shaderF16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  /** True on software adapters (SwiftShader); hearth still runs there, slowly. */
  isFallback: boolean;
}

/** Work-split choices made per adapter; kernels read them when they build their pipelines. */
export interface GpuTuning {
  /**
   * Decode matvec with one subgroup per row and subgroupAdd (no barrier) — used whenever the
   * adapter has subgroups; else 8 threads per row and a workgroup reduction. GPUs only: CPU-backed
   * adapters take the barrier-free kernels for every M.
   */
  matvecSubgroups: boolean;
  /** Largest subgroup size the adapter may use (rows per matvec workgroup = 64 / this). */
  subgroupMaxSize: number;
  /**
   * Use the barrier-free variants of the kernels that reduce across threads (prefill matmul,
   * attention, RMSNorm): one thread owns a whole output tile or row. Right for CPU-backed adapters,
   * wrong for GPUs, whose variants stage through workgroup memory.
   */
  barrierFree: boolean;
}

export function tuningFor(adapter: AdapterSummary, features: GpuFeatures, subgroupMaxSize: number): GpuTuning {
  return {
    matvecSubgroups: features.subgroups && subgroupMaxSize >= 1 && subgroupMaxSize <= 64,
    subgroupMaxSize,
    barrierFree: adapter.isFallback,
  };
}

export interface GpuContext {
  device: GPUDevice;
  features: GpuFeatures;
  limits: GPUSupportedLimits;
  adapter: AdapterSummary;
  backend: 'browser' | 'node';
  tuning: GpuTuning;
  pipelines: PipelineCache;
  /**
   * The GPU object the adapter came from. Held so it lives as long as the device: in Node, a
   * collected `webgpu` instance destroys Dawn's instance under a live device (a crash in ProcessEvents).
   */
  instance: GPU;
  /** Set when the device is lost; every later GPU call fails with DEVICE_LOST. */
  lost: { reason: string; message: string } | null;
  /**
   * Delay step readbacks until most of the step has run (gpu/pacing.ts): on in Node on a CPU-backed
   * adapter, where Dawn's Node bindings spin a core while a map is pending; off elsewhere.
   */
  paceReadbacks: boolean;
}

export async function deviceFromGpu(gpu: GPU | undefined, backend: 'browser' | 'node'): Promise<GpuContext> {
  if (!gpu)
    throw new EngineError(
      'WEBGPU_UNAVAILABLE',
      backend === 'browser'
        ? 'WebGPU is not available in this browser context (navigator.gpu is missing). Use a browser with WebGPU enabled (Chrome/Edge 113+, or Chromium with --enable-unsafe-webgpu) on a secure (https or localhost) page.'
        : 'WebGPU is not available in Node: the `webgpu` package could not be loaded.',
    );
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter)
    throw new EngineError(
      'WEBGPU_UNAVAILABLE',
      backend === 'browser'
        ? 'No WebGPU adapter: the browser has WebGPU but found no usable GPU. Check chrome://gpu, update the GPU driver, or enable the software fallback (--enable-unsafe-webgpu).'
        : 'No WebGPU adapter: Dawn found no Vulkan driver. Install a Vulkan driver (GPU vendor driver, or `apt-get install chromium libvulkan1` for the SwiftShader software device) or set VK_ICD_FILENAMES to an ICD json.',
    );
  const want: GPUFeatureName[] = [];
  const features: GpuFeatures = {
    shaderF16: adapter.features.has('shader-f16'),
    subgroups: adapter.features.has('subgroups'),
    timestampQuery: adapter.features.has('timestamp-query'),
  };
  if (features.shaderF16) want.push('shader-f16');
  if (features.subgroups) want.push('subgroups');
  if (features.timestampQuery) want.push('timestamp-query');
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: want,
    requiredLimits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const summary: AdapterSummary = {
    vendor: info.vendor || 'unknown',
    architecture: info.architecture || '',
    description: info.description || '',
    isFallback: Boolean(info.isFallbackAdapter ?? (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter),
  };
  const ctx: GpuContext = {
    device,
    features,
    limits: device.limits,
    adapter: summary,
    backend,
    tuning: tuningFor(summary, features, info.subgroupMaxSize ?? 64),
    instance: gpu,
    pipelines: new PipelineCache(device),
    lost: null,
    paceReadbacks: backend === 'node' && summary.isFallback,
  };
  void device.lost.then((e) => {
    ctx.lost = { reason: String(e.reason), message: e.message };
  });
  return ctx;
}

/** Browser (or any global navigator.gpu) device. */
export async function acquireBrowserDevice(): Promise<GpuContext> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return deviceFromGpu(nav?.gpu, 'browser');
}

export function describeAdapter(a: AdapterSummary): string {
  const parts = [a.vendor, a.architecture, a.description].filter((s) => s.length > 0);
  return parts.join(' ') + (a.isFallback ? ' (software fallback adapter)' : '');
}

export function checkDevice(ctx: GpuContext): void {
  if (ctx.lost) throw lostError(ctx.lost);
}

function lostError(lost: NonNullable<GpuContext['lost']>): EngineError {
  return new EngineError('DEVICE_LOST', `The GPU device was lost (${lost.reason}: ${lost.message}). Reload the model to continue.`, {
    reason: lost.reason,
  });
}

/**
 * Map `buf` for reading (all of it, or `size` bytes at `offset`). A failure is an EngineError:
 * DEVICE_LOST when the device is lost (mapAsync then rejects with a bare AbortError, before
 * `device.lost` has settled), else GPU_ERROR.
 */
export async function mapRead(ctx: GpuContext, buf: GPUBuffer, offset?: number, size?: number): Promise<void> {
  try {
    await (offset === undefined ? buf.mapAsync(1 /* GPUMapMode.READ */) : buf.mapAsync(1, offset, size));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    if (!ctx.lost) await Promise.race([ctx.device.lost, new Promise((r) => setTimeout(r, 100))]);
    if (ctx.lost) throw lostError(ctx.lost);
    const name = e instanceof Error ? e.name : typeof e;
    throw new EngineError('GPU_ERROR', `Reading a result back from the GPU failed (${name}): ${e instanceof Error ? e.message : String(e)}`, { name });
  }
}

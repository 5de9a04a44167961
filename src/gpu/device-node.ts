// Node device through the `webgpu` package (Dawn). With no Vulkan driver of its own, Dawn is
// pointed at the SwiftShader ICD that Debian's chromium ships. Node-only module.

import { existsSync, readdirSync } from 'node:fs';
import { EngineError } from '../api/errors.js';
import { deviceFromGpu, type GpuContext } from './device.js';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/** Vulkan ICDs Dawn would accept (lavapipe is refused by Dawn, so it does not count). */
function systemIcds(): string[] {
  const out: string[] = [];
  for (const d of ICD_DIRS) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (f.endsWith('.json') && !f.startsWith('lvp')) out.push(`${d}/${f}`);
  }
  return out;
}

export interface NodeDeviceOptions {
  /** Dawn bounds-checks every storage access unless this is false (a web page cannot turn it off). */
  robustness?: boolean;
}

export async function acquireNodeDevice(opts: NodeDeviceOptions = {}): Promise<GpuContext> {
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && systemIcds().length === 0 && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let mod: typeof import('webgpu');
  try {
    mod = await import('webgpu');
  } catch (e) {
    throw new EngineError('WEBGPU_UNAVAILABLE', `The 'webgpu' package failed to load (${String(e)}). Run npm install.`);
  }
  Object.assign(globalThis, mod.globals);
  // Dawn then zero-initializes workgroup memory in the shader instead of through the Vulkan
  // extension, which SwiftShader compiles slowly (seconds per pipeline); the result is the same.
  // Timestamp queries keep full precision: Dawn rounds them (to 64 µs on an H100) against timing
  // attacks in pages, which turns a per-kernel profile of a sub-millisecond step into noise.
  const toggles: string[] = ['disable-dawn-features=use_vulkan_zero_initialize_workgroup_memory_extension,timestamp_quantization'];
  if (opts.robustness === false) toggles.push('enable-dawn-features=disable_robustness');
  const gpu = mod.create(toggles);
  return deviceFromGpu(gpu, 'node');
}

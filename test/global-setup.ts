// Vitest global setup: Dawn in Node needs a Vulkan ICD; point it at chromium's SwiftShader
// before any test worker starts so every worker inherits the environment.
import { existsSync, mkdirSync } from 'node:fs';

export default function setup(): void {
  const icd = '/usr/lib/chromium/vk_swiftshader_icd.json';
  if (!process.env.VK_ICD_FILENAMES && existsSync(icd)) process.env.VK_ICD_FILENAMES = icd;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  mkdirSync('test/fixtures/out', { recursive: true });
}

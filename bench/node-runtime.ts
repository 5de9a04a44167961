// What the Node benchmark scripts load from src/. src/ imports WGSL with Vite's `?raw`, so Node
// needs the loader hook (bin/wgsl-hooks.mjs; bin/hearth.js registers the same one for the CLI)
// before any src/ module that reaches a shader is evaluated. This module registers it, then
// imports those modules, so a script that imports them from here needs no preamble of its own.
// Static imports are evaluated in order: import this module before anything that loads shaders.

import { register } from 'node:module';

register('../bin/wgsl-hooks.mjs', import.meta.url);

export const { acquireNodeDevice } = await import('../src/gpu/device-node.js');
export const { describeAdapter } = await import('../src/gpu/device.js');
export const { probeCeilings } = await import('../src/gpu/probes.js');
export const { fileSource } = await import('../src/model/file-source-node.js');
export const { loadModel } = await import('../src/model/model.js');
export const { ModelRunner } = await import('../src/model/forward.js');
export const { benchModel, benchPrompt } = await import('../src/engine/bench.js');
export const { generate } = await import('../src/engine/generate.js');

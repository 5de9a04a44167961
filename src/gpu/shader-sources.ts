// WGSL sources by op name, loaded as text (Vite's ?raw; bin/hearth.js registers the same for Node).
// A new op adds its import here.

import add from '../../shaders/add.wgsl?raw';
import attention from '../../shaders/attention.wgsl?raw';
import cacheScan from '../../shaders/cache-scan.wgsl?raw';
import encoderAttention from '../../shaders/encoder-attention.wgsl?raw';
import gelu from '../../shaders/gelu.wgsl?raw';
import kvMove from '../../shaders/kv-move.wgsl?raw';
import layerNorm from '../../shaders/layer-norm.wgsl?raw';
import matmul from '../../shaders/matmul.wgsl?raw';
import matmulSubgroups from '../../shaders/matmul-subgroups.wgsl?raw';
import pool from '../../shaders/pool.wgsl?raw';
import probe from '../../shaders/probe.wgsl?raw';
import rmsNorm from '../../shaders/rms-norm.wgsl?raw';
import rope from '../../shaders/rope.wgsl?raw';
import sample from '../../shaders/sample.wgsl?raw';
import spec from '../../shaders/spec.wgsl?raw';
import swiglu from '../../shaders/swiglu.wgsl?raw';
import treeFeed from '../../shaders/tree-feed.wgsl?raw';
import vocabScan from '../../shaders/vocab-scan.wgsl?raw';

export const SHADERS = {
  add,
  attention,
  'cache-scan': cacheScan,
  'encoder-attention': encoderAttention,
  gelu,
  'kv-move': kvMove,
  'layer-norm': layerNorm,
  matmul,
  // matmul.wgsl plus its subgroup entry points; only compiled on adapters with `subgroups`.
  'matmul-subgroups': `enable subgroups;\n${matmul}\n${matmulSubgroups}`,
  pool,
  probe,
  'rms-norm': rmsNorm,
  rope,
  // Both scan vocabulary rows with vocab-scan.wgsl's helpers.
  sample: `${vocabScan}\n${sample}`,
  spec: `${vocabScan}\n${spec}`,
  swiglu,
  'tree-feed': treeFeed,
} as const;

export type ShaderName = keyof typeof SHADERS;

// PipelineCache.prewarm: a pipeline compiled in the background is what get() returns later, with
// no blocking compile; and a matmul on a real GPU prewarms every matvec bucket (a CPU-backed
// adapter prewarms nothing). The device is wrapped to count the two ways of creating a pipeline.

import { describe, expect, it } from 'vitest';
import { PipelineCache } from '../../src/gpu/pipelines.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { MATVEC_BUCKETS, Matmul } from '../../src/kernels/matmul.js';
import { GGMLType } from '../../src/model/gguf.js';
import { StepUniform, storageBuffer } from '../../src/gpu/buffers.js';
import { gpu, TUNINGS, validated, withTuning } from './helpers.js';

function counting(device: GPUDevice): { device: GPUDevice; sync: () => number; async: () => number } {
  let sync = 0;
  let async = 0;
  const proxy = new Proxy(device, {
    get(target, prop) {
      if (prop === 'createComputePipeline') sync++;
      if (prop === 'createComputePipelineAsync') async++;
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { device: proxy, sync: () => sync, async: () => async };
}

describe('PipelineCache.prewarm', () => {
  it('compiles in the background once, and get() then returns that pipeline without compiling', async () => {
    const ctx = await gpu();
    const c = counting(ctx.device);
    const cache = new PipelineCache(c.device);
    const constants = { WTYPE: GGMLType.F32, MV_M: 8 };
    cache.prewarm('matmul', 'matvec', constants);
    cache.prewarm('matmul', 'matvec', constants);
    await cache.settled();
    expect(c.async()).toBe(1);
    const p = cache.get('matmul', 'matvec', constants);
    expect(c.sync()).toBe(0);
    expect(p.getBindGroupLayout(0)).toBeTruthy();
    cache.get('matmul', 'matvec', { ...constants, MV_M: 4 });
    expect(c.sync()).toBe(1);
  });

  it('a matmul prewarms every matvec bucket on a real GPU and none on a CPU-backed adapter', async () => {
    const base = await gpu();
    const tuning = TUNINGS.find((t) => !t.barrierFree && !t.matvecSubgroups)!;
    const w = { buffer: storageBuffer(base.device, 64 * 64 * 4, 'w'), type: GGMLType.F32, K: 64, N: 64, scaleOffsetBytes: 0 };
    const x = storageBuffer(base.device, 64 * 4 * 16, 'x');
    const y = storageBuffer(base.device, 64 * 4 * 16, 'y');
    const step = new StepUniform(base.device).buffer;
    for (const isFallback of [false, true]) {
      const c = counting(base.device);
      const ctx: GpuContext = { ...withTuning(base, tuning), adapter: { ...base.adapter, isFallback }, pipelines: new PipelineCache(c.device) };
      await validated(ctx, () => new Matmul(ctx, w, x, y, step));
      await ctx.pipelines.settled();
      expect(c.async()).toBe(isFallback ? 0 : MATVEC_BUCKETS.length);
    }
    for (const b of [w.buffer, x, y, step]) b.destroy();
  });
});

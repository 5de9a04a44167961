// The device's own ceilings, measured with simple WGSL probes (shaders/probe.wgsl) on the same
// adapter hearth runs on: best streaming-read bandwidth and best f32 matmul rate over a few shapes.

import type { GpuContext } from './device.js';
import { storageBuffer, uniformFrom } from './buffers.js';
import { timePass } from './timing.js';
import { EngineError } from '../api/errors.js';

/** The largest read buffer up to `bytes` the device will allocate, halving on out-of-memory (SwiftShader caps its heap under 1 GiB). */
export async function probeReadBuffer(dev: GPUDevice, bytes: number): Promise<GPUBuffer> {
  for (let b = bytes; b >= 1 << 20; b = Math.floor(b / 32) * 16) {
    dev.pushErrorScope('out-of-memory');
    const buf = storageBuffer(dev, Math.floor(b / 16) * 16, 'probe.src');
    if (!(await dev.popErrorScope())) return buf;
    buf.destroy();
  }
  throw new EngineError('GPU_ERROR', `The ceiling probe could not allocate a read buffer of 1 MiB or more (asked for ${bytes} bytes).`);
}

export interface Ceilings {
  /** Best streaming-read bandwidth, GB/s (1e9 bytes). */
  readGBps: number;
  /** Best f32 matmul rate, GFLOP/s. */
  matmulGflops: number;
  /** Every variant's figure, by name. */
  details: Record<string, number>;
}

export async function probeCeilings(ctx: GpuContext, opts: { readBytes?: number; matmulN?: number } = {}): Promise<Ceilings> {
  const dev = ctx.device;
  const details: Record<string, number> = {};
  const src = await probeReadBuffer(dev, Math.min(opts.readBytes ?? 64 << 20, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize));
  const n4 = Math.floor(src.size / 16);
  const maxThreads = 64 * 4096;
  const dst = storageBuffer(dev, Math.max(maxThreads, 1024 * 1024) * 4, 'probe.dst');
  const params = uniformFrom(dev, [n4, 0, 0, 0], 'probe.params');
  const bindGroup = (p: GPUComputePipeline, withB: GPUBuffer | null): GPUBindGroup =>
    dev.createBindGroup({
      layout: p.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: src } },
        { binding: 1, resource: { buffer: dst } },
        { binding: 2, resource: { buffer: params } },
        ...(withB ? [{ binding: 3, resource: { buffer: withB } }] : []),
      ],
    });
  let readGBps = 0;
  for (const entry of ['read_stream', 'read_slices']) {
    const p = ctx.pipelines.get('probe', entry);
    const bg = bindGroup(p, null);
    for (const wgs of [16, 64, 256, 1024, 4096]) {
      const run = (pass: GPUComputePassEncoder): void => {
        pass.setPipeline(p);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(wgs);
      };
      await timePass(ctx, run, 1); // warm-up
      const ms = await timePass(ctx, run, 5, 'best');
      if (!(ms > 0)) throw new EngineError('GPU_ERROR', `The read probe ${entry} with ${wgs} workgroups timed ${ms} ms.`);
      const gbps = (n4 * 16) / (ms * 1e6);
      details[`${entry}/${wgs}wg GB/s`] = gbps;
      readGBps = Math.max(readGBps, gbps);
    }
  }
  src.destroy();

  let matmulGflops = 0;
  const n = opts.matmulN ?? 512;
  const a = storageBuffer(dev, n * n * 4, 'probe.a');
  const b = storageBuffer(dev, n * n * 4, 'probe.b');
  const c = storageBuffer(dev, n * n * 4, 'probe.c');
  const mparams = uniformFrom(dev, [n, 0, 0, 0], 'probe.mparams');
  for (const entry of ['matmul_regs', 'matmul_tiled']) {
    const p = ctx.pipelines.get('probe', entry);
    const bg = dev.createBindGroup({
      layout: p.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: a } },
        { binding: 1, resource: { buffer: c } },
        { binding: 2, resource: { buffer: mparams } },
        { binding: 3, resource: { buffer: b } },
      ],
    });
    const groups = entry === 'matmul_regs' ? Math.ceil(n / 32) : n / 64;
    const run = (pass: GPUComputePassEncoder): void => {
      pass.setPipeline(p);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(groups, groups);
    };
    await timePass(ctx, run, 1);
    const ms = await timePass(ctx, run, 5, 'best');
    if (!(ms > 0)) throw new EngineError('GPU_ERROR', `The matmul probe ${entry} at n=${n} timed ${ms} ms.`);
    const gflops = (2 * n * n * n) / (ms * 1e6);
    details[`${entry}/${n} GFLOP/s`] = gflops;
    matmulGflops = Math.max(matmulGflops, gflops);
  }
  for (const buf of [a, b, c, dst, params, mparams]) buf.destroy();
  return { readGBps, matmulGflops, details };
}

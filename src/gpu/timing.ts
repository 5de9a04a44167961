// GPU timing: timestamp queries around compute passes when the adapter has them, wall clock
// around submit → onSubmittedWorkDone otherwise. Profiler collects one pass per labelled dispatch.

import { mapRead, type GpuContext } from './device.js';
import { ReadbackPacer } from './pacing.js';
import { COPY_DST, MAP_READ } from './buffers.js';

const QUERY_RESOLVE = 0x0200; // GPUBufferUsage.QUERY_RESOLVE

/** Collects per-label GPU time from timestamp writes on passes it hands out. */
export class Profiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private readonly read: GPUBuffer;
  private readonly labels: string[] = [];

  constructor(
    private readonly ctx: GpuContext,
    private readonly capacity: number,
  ) {
    this.querySet = ctx.device.createQuerySet({ type: 'timestamp', count: 2 * capacity });
    this.resolve = ctx.device.createBuffer({ size: 16 * capacity, usage: QUERY_RESOLVE | 0x0004 });
    this.read = ctx.device.createBuffer({ size: 16 * capacity, usage: MAP_READ | COPY_DST });
  }

  static available(ctx: GpuContext): boolean {
    return ctx.features.timestampQuery;
  }

  /** A pass whose start and end are timestamped under `label`. */
  pass(enc: GPUCommandEncoder, label: string): GPUComputePassEncoder {
    const i = this.labels.length;
    if (i >= this.capacity) throw new Error(`hearth internal error: profiler capacity ${this.capacity} exceeded`);
    this.labels.push(label);
    return enc.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
  }

  /** Record the resolve into `enc`; call once after the last pass. */
  finish(enc: GPUCommandEncoder): void {
    const n = this.labels.length;
    enc.resolveQuerySet(this.querySet, 0, 2 * n, this.resolve, 0);
    enc.copyBufferToBuffer(this.resolve, 0, this.read, 0, 16 * n);
  }

  /** Milliseconds per label, summed over passes with the same label, in first-seen order. */
  async results(): Promise<{ kernel: string; ms: number }[]> {
    await mapRead(this.ctx, this.read);
    const t = new BigUint64Array(this.read.getMappedRange().slice(0));
    this.read.unmap();
    const sums = new Map<string, number>();
    this.labels.forEach((l, i) => {
      const ns = Number(t[2 * i + 1]! - t[2 * i]!);
      sums.set(l, (sums.get(l) ?? 0) + Math.max(0, ns) / 1e6);
    });
    this.destroy();
    return [...sums].map(([kernel, ms]) => ({ kernel, ms }));
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolve.destroy();
    this.read.destroy();
  }
}

/** GPU milliseconds of what `encode` records into one pass: the median of `reps` runs, or the best (a ceiling probe: a spike of load on a shared machine only ever slows a run). */
export async function timePass(ctx: GpuContext, encode: (pass: GPUComputePassEncoder) => void, reps = 3, pick: 'median' | 'best' = 'median'): Promise<number> {
  const times: number[] = [];
  // The repetitions after the first wait without spinning a core the pass runs on (gpu/pacing.ts).
  const pacer = new ReadbackPacer(ctx.paceReadbacks);
  for (let r = 0; r < reps; r++) {
    const enc = ctx.device.createCommandEncoder();
    if (Profiler.available(ctx)) {
      const prof = new Profiler(ctx, 1);
      const pass = prof.pass(enc, 'x');
      encode(pass);
      pass.end();
      prof.finish(enc);
      ctx.device.queue.submit([enc.finish()]);
      const submitted = performance.now();
      await pacer.beforeMap('pass', submitted);
      times.push((await prof.results())[0]!.ms);
      pacer.record('pass', submitted);
    } else {
      const t0 = performance.now();
      const pass = enc.beginComputePass();
      encode(pass);
      pass.end();
      ctx.device.queue.submit([enc.finish()]);
      await pacer.beforeMap('pass', t0);
      await ctx.device.queue.onSubmittedWorkDone();
      pacer.record('pass', t0);
      times.push(performance.now() - t0);
    }
  }
  times.sort((a, b) => a - b);
  return pick === 'best' ? times[0]! : times[Math.floor(times.length / 2)]!;
}

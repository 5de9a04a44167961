// The matmul's kernel variants side by side on this adapter: for the benchmark model's shapes and
// a few token counts M, the time of one dispatch through `Matmul` (src/kernels/matmul.ts) under each
// GpuTuning — what CPU-backed adapters run (matvec_rows / matmul_rows) and what GPUs run (a
// subgroup or 8 threads a row for M <= 16, 64x64 workgroup tiles above). On SwiftShader this is the
// evidence for the barrier-free choice; on a GPU, for the other.
// `npx tsx bench/matmul-kernels.ts [--types q4_0,f32] [--write]`.
//
// Timing: 16 dispatches in one pass, submitted, then a sleep of 80 % of the best time seen so far
// before awaiting the queue (Dawn's Node bindings spin a core while they wait, a core SwiftShader
// needs); a dispatch = the best of 4 such submissions ÷ 16. On a CPU-backed adapter the GPU
// variants skip M = 64 (workgroup tiles with barriers: minutes there, and never run there).
// Weights are seeded random values quantized with src/model/quant.ts.

import { argValue, machineInfo, writeBenchmarksSection } from './report.js';
import { acquireNodeDevice, describeAdapter } from './node-runtime.js';

const { Matmul } = await import('../src/kernels/matmul.js');
const { StepUniform, storageFrom } = await import('../src/gpu/buffers.js');
const { GGMLType } = await import('../src/model/gguf.js');
const { gpuLayout, quantize, repackTensor } = await import('../src/model/quant.js');
const { rng, randn } = await import('../test/fixtures/random.js');
type GpuContext = import('../src/gpu/device.js').GpuContext;
type GpuTuning = import('../src/gpu/device.js').GpuTuning;

const TYPES = { f32: GGMLType.F32, q8_0: GGMLType.Q8_0, q4_0: GGMLType.Q4_0, q4_k: GGMLType.Q4_K } as const;
type TypeName = keyof typeof TYPES;
// The bench model (bench/models.ts): d 512, FF 1408, 4 KV heads of 64, vocabulary 899.
const SHAPES: { name: string; K: number; N: number }[] = [
  { name: 'qkv', K: 512, N: 1024 },
  { name: 'gate/up', K: 512, N: 2816 },
  { name: 'down', K: 1408, N: 512 },
];
const MS = [1, 8, 16, 64];

const types = (argValue('--types') ?? 'q4_0,f32').split(',') as TypeName[];
for (const t of types) if (!(t in TYPES)) throw new Error(`--types: ${t} is not one of ${Object.keys(TYPES).join(', ')}`);

const base = await acquireNodeDevice({ robustness: false });
const dev = base.device;
const VARIANTS: { name: string; tuning: GpuTuning }[] = [
  { name: 'barrier-free (matvec_rows / matmul_rows)', tuning: { ...base.tuning, barrierFree: true, matvecSubgroups: false } },
  ...(base.features.subgroups ? [{ name: 'GPU: subgroup matvec / tiled', tuning: { ...base.tuning, barrierFree: false, matvecSubgroups: true } }] : []),
  { name: 'GPU: 8-thread matvec / tiled', tuning: { ...base.tuning, barrierFree: false, matvecSubgroups: false } },
];

async function timeDispatch(ctx: GpuContext, k: InstanceType<typeof Matmul>, M: number): Promise<number> {
  const once = async (reps: number, waitMs: number): Promise<number> => {
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < reps; i++) k.encode(pass, M);
    pass.end();
    dev.queue.submit([enc.finish()]);
    const t0 = performance.now();
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    await dev.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await once(2, 0); // compiles on first use
  let best = Infinity;
  for (let i = 0; i < 4; i++) best = Math.min(best, await once(16, Number.isFinite(best) ? 0.8 * best : 0));
  return best / 16;
}

interface Row {
  type: TypeName;
  shape: string;
  K: number;
  N: number;
  M: number;
  ms: Record<string, number>;
}

const rows: Row[] = [];
const t0 = performance.now();
for (const type of types) {
  for (const s of SHAPES) {
    const ggml = TYPES[type];
    const K = s.K;
    // Q4_K needs K % 256 == 0: ffn_down (K 1408) is Q8_0 in the q4_k mix, so it is skipped here.
    if (ggml === GGMLType.Q4_K && K % 256 !== 0) continue;
    const values = randn(rng(K * 7 + s.N), s.N * K, 0.05);
    const bytes = quantize(ggml, values);
    const { scaleOffsetBytes } = gpuLayout(ggml, s.N * K);
    const w = { buffer: storageFrom(dev, repackTensor(ggml, bytes, s.N * K), 'w'), type: ggml, K, N: s.N, scaleOffsetBytes };
    const maxM = Math.max(...MS);
    const x = storageFrom(dev, randn(rng(3), maxM * K), 'x');
    const y = dev.createBuffer({ size: maxM * s.N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const step = new StepUniform(dev);
    for (const M of MS) {
      step.write(M);
      const row: Row = { type, shape: s.name, K, N: s.N, M, ms: {} };
      for (const v of VARIANTS) {
        if (base.adapter.isFallback && !v.tuning.barrierFree && M > 16) continue;
        const ctx: GpuContext = { ...base, tuning: v.tuning };
        row.ms[v.name] = await timeDispatch(ctx, new Matmul(ctx, w, x, y, step.buffer), M);
      }
      rows.push(row);
      process.stderr.write(
        `${type} ${s.name} M ${M}: ${Object.values(row.ms)
          .map((ms) => ms.toFixed(2))
          .join(' / ')} ms\n`,
      );
    }
    w.buffer.destroy();
    x.destroy();
    y.destroy();
  }
}
const wall = (performance.now() - t0) / 1000;

const m = machineInfo();
const names = VARIANTS.map((v) => v.name);
const gflops = (r: Row, ms: number): string => (ms > 0 ? ((2 * r.K * r.N * r.M) / (ms * 1e6)).toFixed(2) : '–');
const lines = [
  `## Matmul kernels side by side (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Adapter: ${describeAdapter(base.adapter)} (Dawn, Node ${m.node}, robustness off). ${m.cpu}; ${m.git}. Command: \`npx tsx bench/matmul-kernels.ts${types.join(',') === 'q4_0,f32' ? '' : ` --types ${types.join(',')}`} --write\` (${wall.toFixed(0)} s).`,
  '',
  'One dispatch of `Matmul` (src/kernels/matmul.ts) on the benchmark model’s shapes, under each kernel set the adapter tunings choose between: ms, and GFLOP/s in brackets (2·K·N·M / time). Each cell: the best of 4 submissions of 16 dispatches, ÷ 16. The barrier-free set is what CPU-backed adapters run; on a GPU the others are. M = 64 is prefill; on a CPU-backed adapter the GPU sets skip it (workgroup tiles with barriers take minutes there).',
  '',
  `| type | matrix (K × N) | M | ${names.join(' | ')} |`,
  `|---|---|---:|${names.map(() => '---:').join('|')}|`,
  ...rows.map(
    (r) =>
      `| ${r.type} | ${r.shape} (${r.K} × ${r.N}) | ${r.M} | ${names.map((n) => (r.ms[n] === undefined ? '–' : `${r.ms[n].toFixed(2)} (${gflops(r, r.ms[n])})`)).join(' | ')} |`,
  ),
  '',
];
const section = lines.join('\n');
process.stdout.write(`${section}\n`);
if (process.argv.includes('--write')) writeBenchmarksSection('matmul-kernels', section);
process.exit(0);

// The benchmark on a real GPU (issue 3): hearth in Node through Dawn on the GPU's Vulkan driver,
// its WGSL ceiling probes on the same adapter, and llama.cpp's GPU builds (CUDA, Vulkan) on the
// same files, every layer offloaded. It is what bench/device/run.sh runs on a lent GPU machine;
// no browser is there, so wllama does not run (it is a CPU/WASM peer and has its numbers in the
// main table). Each run writes one JSON file; `--report` turns the files of one session into the
// "Real GPU" section of BENCHMARKS.md.
//
//   npx tsx bench/gpu.ts --shape small|large [--types f32,q8_0] [--llama cuda,vulkan|none]
//                        [--no-hearth] [--prompt-tokens 128] [--decode-tokens 128] --json FILE
//   npx tsx bench/gpu.ts --report FILE... [--device 'NVIDIA H100 80GB HBM3'] [--write]
//
// A fallback (CPU) adapter is refused unless --allow-cpu: this table is for GPUs only.

import { register } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { argValue, machineInfo, writeBenchmarksSection } from './report.js';
import { BENCH_SHAPES, BENCH_TYPES, TYPE_MIX, benchModelPath, benchVocabMeta, ensureBenchModels, type BenchType, type ShapeName } from './models.js';
import type { LlamaCppResult } from './llama-cpp.js';
import type { KernelTime as KernelTimeRow } from '../src/engine/bench.js';

register('../bin/wgsl-hooks.mjs', import.meta.url);

interface HearthRow {
  type: BenchType;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  weight_bytes_per_token: number;
  flops_per_token: number;
  load_ms: number;
  first_tokens: number[];
  profile: { decode: KernelTimeRow[]; prefill: KernelTimeRow[] } | null;
}
export interface GpuRun {
  date: string;
  machine: ReturnType<typeof machineInfo>;
  shape: ShapeName;
  prompt_tokens: number;
  decode_tokens: number;
  adapter: string | null;
  ceilings: { readGBps: number; matmulGflops: number; details: Record<string, number> } | null;
  hearth: HearthRow[];
  llama: LlamaCppResult[];
  failures: { what: string; error: string }[];
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

async function run(): Promise<void> {
  const shape = (argValue('--shape') ?? 'small') as ShapeName;
  if (!(shape in BENCH_SHAPES)) throw new Error(`unknown shape ${shape}`);
  const types = (argValue('--types')?.split(',') ?? [...BENCH_TYPES]) as BenchType[];
  const llamaBackends = (argValue('--llama') ?? 'cuda,vulkan').split(',').filter((b) => b !== 'none') as ('cuda' | 'vulkan')[];
  const promptTokens = Number(argValue('--prompt-tokens') ?? 128);
  const decodeTokens = Number(argValue('--decode-tokens') ?? 128);
  const jsonPath = argValue('--json');
  const paths = ensureBenchModels(types, log, shape);
  const out: GpuRun = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    shape,
    prompt_tokens: promptTokens,
    decode_tokens: decodeTokens,
    adapter: null,
    ceilings: null,
    hearth: [],
    llama: [],
    failures: [],
  };
  const save = (): void => {
    if (jsonPath) writeFileSync(jsonPath, JSON.stringify(out, null, 1));
  };
  const { benchPrompt } = await import('../src/engine/bench.js');
  let vocabSize = 0;

  if (!process.argv.includes('--no-hearth')) {
    const { acquireNodeDevice } = await import('../src/gpu/device-node.js');
    const { describeAdapter } = await import('../src/gpu/device.js');
    const { probeCeilings } = await import('../src/gpu/probes.js');
    const { loadModel } = await import('../src/model/model.js');
    const { fileSource } = await import('../src/model/file-source-node.js');
    const { benchModel } = await import('../src/engine/bench.js');
    const ctx = await acquireNodeDevice({ robustness: process.argv.includes('--robust') });
    out.adapter = describeAdapter(ctx.adapter);
    log(`adapter: ${out.adapter}`);
    if (ctx.adapter.isFallback && !process.argv.includes('--allow-cpu')) throw new Error(`Dawn gave a fallback adapter (${out.adapter}), not a GPU`);
    try {
      // A GPU: 1 GiB where the limits allow (far past any last-level cache) and a 2048² matmul
      // (17 GFLOP, milliseconds rather than the dispatch overhead); a CPU adapter keeps the defaults.
      out.ceilings = await probeCeilings(ctx, ctx.adapter.isFallback ? {} : { readBytes: 1 << 30, matmulN: 2048 });
      log(`ceilings: read ${out.ceilings.readGBps.toFixed(1)} GB/s, matmul ${out.ceilings.matmulGflops.toFixed(0)} GFLOP/s`);
    } catch (e) {
      out.failures.push({ what: 'ceilings', error: msg(e) });
    }
    save();
    for (const type of types) {
      const src = await fileSource(paths[type]);
      try {
        const t0 = performance.now();
        const model = await loadModel(ctx, src, { maxContext: Math.max(512, promptTokens + decodeTokens + 8) });
        const loadMs = performance.now() - t0;
        try {
          vocabSize = model.cfg.vocabSize;
          const r = await benchModel(model, { promptTokens, decodeTokens, profile: true });
          out.hearth.push({
            type,
            prefill_tokens_per_s: r.prefill_tokens_per_s,
            decode_tokens_per_s: r.decode_tokens_per_s,
            weight_bytes_per_token: r.weight_bytes_per_token,
            flops_per_token: r.flops_per_token,
            load_ms: loadMs,
            first_tokens: r.first_tokens,
            profile: r.profile ?? null,
          });
          log(`hearth ${shape} ${type}: prefill ${r.prefill_tokens_per_s.toFixed(0)} tok/s, decode ${r.decode_tokens_per_s.toFixed(0)} tok/s`);
        } finally {
          model.destroy();
        }
      } catch (e) {
        out.failures.push({ what: `hearth ${type}`, error: msg(e) });
        log(`hearth ${type} failed: ${msg(e)}`);
      } finally {
        await src.close?.();
      }
      save();
    }
    ctx.device.destroy();
  }

  if (llamaBackends.length > 0) {
    const { llamaCppBench } = await import('./llama-cpp.js');
    if (vocabSize === 0) vocabSize = (benchVocabMeta()['tokenizer.ggml.tokens'] as string[]).length;
    const prompt = benchPrompt(vocabSize, promptTokens);
    for (const gpu of llamaBackends) {
      try {
        const r = await llamaCppBench(
          types.map((t) => ({ modelPath: paths[t], promptTokens: prompt, decodeTokens, threads: 8, gpu })),
          log,
        );
        out.llama.push(...r.results);
      } catch (e) {
        out.failures.push({ what: `llama.cpp ${gpu}`, error: msg(e) });
        log(`llama.cpp ${gpu} failed: ${msg(e).slice(0, 2000)}`);
      }
      save();
    }
  }
  save();
  if (!jsonPath) console.log(JSON.stringify(out, null, 1));
}

// ---- report ------------------------------------------------------------------------------------

const f0 = (x: number): string => x.toFixed(0);
const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;

function report(files: string[]): string {
  const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as GpuRun);
  const device = argValue('--device') ?? runs.find((r) => r.adapter)?.adapter ?? 'unknown GPU';
  const L: string[] = [];
  const first = runs[0]!;
  L.push(
    `Measured on **${device}** (a lent machine: ${first.machine.cpu}, ${first.machine.memory_gib.toFixed(0)} GiB, Node ${first.machine.node}), commit ${first.machine.git}, ${first.date.slice(0, 10)}.`,
    `hearth runs in Node through Dawn on the GPU's Vulkan driver (robustness off); llama.cpp is node-llama-cpp's prebuilt CUDA and Vulkan builds with every layer on the GPU.`,
    `Prompt ${first.prompt_tokens} tokens in one batch, then ${first.decode_tokens} greedy decode steps, as in the main table.`,
    `Ceilings are hearth's WGSL probes on the same adapter (best streaming read, best f32 matmul).`,
    '',
  );
  for (const r of runs.filter((x) => x.hearth.length > 0 || x.llama.length > 0)) {
    const shape = BENCH_SHAPES[r.shape];
    const c = r.ceilings;
    // llama rows of this shape may come from another run (another call on the same machine).
    const llama = runs.filter((x) => x.shape === r.shape).flatMap((x) => x.llama);
    if (r.hearth.length === 0) continue;
    L.push(
      `### ${r.shape} model: d=${shape.dModel}, ${shape.numLayers} layers, FF ${shape.ffDim}, ${shape.numHeads}/${shape.numKvHeads} heads`,
      '',
      c
        ? `Adapter: ${r.adapter}. Ceilings: read ${c.readGBps.toFixed(0)} GB/s, f32 matmul ${(c.matmulGflops / 1000).toFixed(2)} TFLOP/s.`
        : `Adapter: ${r.adapter}. Ceilings: not measured.`,
      '',
      '| type | weights MB | hearth prefill tok/s | hearth decode tok/s | decode % of read ceiling | prefill % of matmul ceiling | llama.cpp CUDA prefill / decode | llama.cpp Vulkan prefill / decode | hearth ÷ CUDA (prefill / decode) | hearth ÷ Vulkan (prefill / decode) | first 8 greedy tokens agree with llama.cpp |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const h of r.hearth) {
      const name = basename(benchModelPath(h.type, r.shape));
      const file = (b: string): LlamaCppResult | undefined => llama.find((x) => x.backend === b && x.model === name);
      const cu = file('llama.cpp-cuda');
      const vk = file('llama.cpp-vulkan');
      const pair = (x: LlamaCppResult | undefined): string => (x ? `${f0(x.prefill_tokens_per_s)} / ${f0(x.decode_tokens_per_s)}` : '—');
      const ratio = (x: LlamaCppResult | undefined): string =>
        x ? `${(h.prefill_tokens_per_s / x.prefill_tokens_per_s).toFixed(2)} / ${(h.decode_tokens_per_s / x.decode_tokens_per_s).toFixed(2)}` : '—';
      const agree = [cu, vk]
        .filter((x): x is LlamaCppResult => x !== undefined)
        .map((x) => {
          const n = Math.min(8, x.first_tokens.length, h.first_tokens.length);
          let k = 0;
          while (k < n && x.first_tokens[k] === h.first_tokens[k]) k++;
          return `${x.backend.replace('llama.cpp-', '')} ${k}/${n}`;
        })
        .join(', ');
      L.push(
        `| ${h.type} | ${(h.weight_bytes_per_token / 1e6).toFixed(0)} | ${f0(h.prefill_tokens_per_s)} | ${f0(h.decode_tokens_per_s)} | ${c ? pct((h.weight_bytes_per_token * h.decode_tokens_per_s) / (c.readGBps * 1e9)) : '—'} | ${c ? pct((h.flops_per_token * h.prefill_tokens_per_s) / (c.matmulGflops * 1e9)) : '—'} | ${pair(cu)} | ${pair(vk)} | ${ratio(cu)} | ${ratio(vk)} | ${agree || '—'} |`,
      );
    }
    L.push('');
    const prof = r.hearth.find((h) => h.profile)?.profile;
    const ph = r.hearth.find((h) => h.profile);
    if (prof && ph) {
      const sum = (k: KernelTimeRow[]): number => k.reduce((a, x) => a + x.ms, 0);
      const byName = new Map<string, { d: number; p: number }>();
      for (const k of prof.decode) byName.set(k.kernel, { d: (byName.get(k.kernel)?.d ?? 0) + k.ms, p: byName.get(k.kernel)?.p ?? 0 });
      for (const k of prof.prefill) byName.set(k.kernel, { d: byName.get(k.kernel)?.d ?? 0, p: (byName.get(k.kernel)?.p ?? 0) + k.ms });
      const dT = sum(prof.decode);
      const pT = sum(prof.prefill);
      L.push(
        `Per-kernel GPU time (timestamp queries), ${ph.type}: one decode step ${dT.toFixed(3)} ms of GPU time against ${(1000 / ph.decode_tokens_per_s).toFixed(3)} ms per token on the wall clock; one ${r.prompt_tokens}-token prefill ${pT.toFixed(3)} ms.`,
        '',
        '| kernel | decode ms | decode % | prefill ms | prefill % |',
        '|---|---:|---:|---:|---:|',
      );
      for (const [name, v] of [...byName].sort((a, b) => b[1].d - a[1].d)) {
        L.push(`| ${name} | ${v.d.toFixed(4)} | ${pct(v.d / dT)} | ${v.p.toFixed(4)} | ${pct(v.p / pT)} |`);
      }
      L.push('');
    }
  }
  const fails = runs.flatMap((r) => r.failures.map((f) => `${r.shape}: ${f.what}: ${f.error.slice(0, 300)}`));
  if (fails.length > 0) L.push('Failures:', '', ...fails.map((f) => `- ${f}`), '');
  L.push(`Files: ${files.map((f) => basename(f)).join(', ')}; the mixes are those of the main table (${TYPE_MIX.q4_k.note}).`);
  return L.join('\n');
}

const reportFiles = process.argv.includes('--report') ? process.argv.slice(2).filter((a) => a.endsWith('.json')) : null;

if (reportFiles) {
  const text = report(reportFiles);
  if (process.argv.includes('--write')) writeBenchmarksSection('gpu', `## Real GPU\n\n${text}`);
  console.log(text);
} else {
  try {
    await run();
  } catch (e) {
    log(`bench/gpu.ts failed: ${msg(e)}`);
    process.exit(1);
  }
}

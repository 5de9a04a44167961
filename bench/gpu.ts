// The benchmark on a real GPU (issue 3): hearth in Node through Dawn on the GPU's Vulkan driver,
// its WGSL ceiling probes on the same adapter, and llama.cpp's GPU builds (CUDA, Vulkan) on the
// same files, every layer offloaded. It is what bench/device/run.sh runs on a lent GPU machine;
// no browser is there, so wllama does not run (it is a CPU/WASM peer and has its numbers in the
// main table). Each run writes one JSON file; `--report` turns the files of one session into the
// "Real GPU" section of BENCHMARKS.md.
//
//   npx tsx bench/gpu.ts --shape small|large [--types f32,q8_0] [--llama cuda,vulkan|none]
//                        [--no-hearth] [--prompt-tokens 128] [--decode-tokens 128] --json FILE
//   npx tsx bench/gpu.ts --report DIR [--device 'NVIDIA H100 80GB HBM3'] [--write]
//
// DIR holds one session's files as bench/device/run.sh names them, prefixed by run (run1-, run2-,
// ...): gpu-*.json (this script), serving.json (bench/serving.ts --json), spec.json
// (bench/speculative.ts --json). The latest run makes the tables; run1 is the before column.
//
// A fallback (CPU) adapter is refused unless --allow-cpu: this table is for GPUs only.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { argValue, machineInfo, REPO, writeBenchmarksSection } from './report.js';
import { BENCH_SHAPES, BENCH_TYPES, benchModelPath, benchVocabMeta, ensureBenchModels, type BenchType, type ShapeName } from './models.js';
import type { LlamaCppResult } from './llama-cpp.js';
import type { Acc as SpecAcc, Row as SpecRow } from './speculative.js';
import type { KernelTime as KernelTimeRow } from '../src/engine/bench.js';

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
  /** Dawn's bounds checks on, as in a web page (--robust). */
  robust?: boolean;
  /** node-llama-cpp's version, where llama.cpp ran. */
  node_llama_cpp?: string;
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
    robust: process.argv.includes('--robust'),
  };
  const save = (): void => {
    if (jsonPath) writeFileSync(jsonPath, JSON.stringify(out, null, 1));
  };
  const { acquireNodeDevice, describeAdapter, probeCeilings, loadModel, fileSource, benchModel, benchPrompt } = await import('./node-runtime.js');
  let vocabSize = 0;

  if (!process.argv.includes('--no-hearth')) {
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
        out.node_llama_cpp = r.node_llama_cpp;
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
const f2 = (x: number): string => x.toFixed(2);
const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;

interface ServingFile {
  command: string;
  concurrency: {
    n: number;
    sequential: { decode_phase_tokens_per_s: number; decode_tokens_per_s: number; ttft_p50_s: number; ttft_p95_s: number };
    concurrent: { decode_phase_tokens_per_s: number; decode_tokens_per_s: number; ttft_p50_s: number; ttft_p95_s: number };
    ratio: number;
    decode_phase_ratio: number;
  }[];
  prefix: { cold_ttft_median_s: number; warm_ttft_median_s: number; ratio: number; warm: { cached_tokens: number; prompt_tokens: number }[] };
}
interface SpecFile {
  target: string;
  draft: string;
  tokens: number;
  rounds: number;
  rows: SpecRow[];
  acc: SpecAcc[];
}

function readRun<T>(dir: string, run: string, name: string): T | null {
  try {
    return JSON.parse(readFileSync(join(dir, `${run}-${name}`), 'utf8')) as T;
  } catch {
    return null;
  }
}

function peerTable(L: string[], r: GpuRun, llama: LlamaCppResult[]): void {
  const c = r.ceilings;
  const shape = BENCH_SHAPES[r.shape];
  L.push(
    `**${r.shape} model** (d=${shape.dModel}, ${shape.numLayers} layers, FF ${shape.ffDim}, ${shape.numHeads}/${shape.numKvHeads} heads). Ceilings on this adapter: read ${f0(c?.readGBps ?? 0)} GB/s, f32 matmul ${((c?.matmulGflops ?? 0) / 1000).toFixed(2)} TFLOP/s.`,
    '',
    '| type | weights MB | hearth prefill tok/s | hearth decode tok/s | decode GPU ms / step | decode: % of read ceiling (wall / GPU time) | prefill: % of matmul ceiling (wall / GPU time) | llama.cpp Vulkan prefill / decode tok/s | hearth ÷ llama.cpp (prefill / decode) | first 8 greedy tokens equal to llama.cpp’s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const h of r.hearth) {
    const name = basename(benchModelPath(h.type, r.shape));
    const vk = llama.find((x) => x.backend === 'llama.cpp-vulkan' && x.model === name);
    const n = vk ? Math.min(8, vk.first_tokens.length, h.first_tokens.length) : 0;
    let k = 0;
    while (vk && k < n && vk.first_tokens[k] === h.first_tokens[k]) k++;
    const gpuDecodeMs = (h.profile?.decode ?? []).reduce((a, x) => a + x.ms, 0);
    const gpuPrefillMs = (h.profile?.prefill ?? []).reduce((a, x) => a + x.ms, 0);
    const readPct = (tokPerS: number): string => (c ? pct((h.weight_bytes_per_token * tokPerS) / (c.readGBps * 1e9)) : '—');
    const mmPct = (tokPerS: number): string => (c ? pct((h.flops_per_token * tokPerS) / (c.matmulGflops * 1e9)) : '—');
    L.push(
      `| ${h.type} | ${f0(h.weight_bytes_per_token / 1e6)} | ${f0(h.prefill_tokens_per_s)} | ${f0(h.decode_tokens_per_s)} | ${f2(gpuDecodeMs)} | ${readPct(h.decode_tokens_per_s)} / ${gpuDecodeMs > 0 ? readPct(1000 / gpuDecodeMs) : '—'} | ${mmPct(h.prefill_tokens_per_s)} / ${gpuPrefillMs > 0 ? mmPct((1000 * r.prompt_tokens) / gpuPrefillMs) : '—'} | ${vk ? `${f0(vk.prefill_tokens_per_s)} / ${f0(vk.decode_tokens_per_s)}` : '—'} | ${vk ? `${f2(h.prefill_tokens_per_s / vk.prefill_tokens_per_s)} / ${f2(h.decode_tokens_per_s / vk.decode_tokens_per_s)}` : '—'} | ${vk ? `${k} of ${n}` : '—'} |`,
    );
  }
  L.push('');
}

function profileTable(L: string[], h: HearthRow, promptTokens: number): void {
  if (!h.profile) return;
  const sum = (k: KernelTimeRow[]): number => k.reduce((a, x) => a + x.ms, 0);
  const byName = new Map<string, { d: number; p: number }>();
  for (const k of h.profile.decode) byName.set(k.kernel, { d: (byName.get(k.kernel)?.d ?? 0) + k.ms, p: byName.get(k.kernel)?.p ?? 0 });
  for (const k of h.profile.prefill) byName.set(k.kernel, { d: byName.get(k.kernel)?.d ?? 0, p: (byName.get(k.kernel)?.p ?? 0) + k.ms });
  const dT = sum(h.profile.decode);
  const pT = sum(h.profile.prefill);
  L.push(
    `Per-kernel GPU time of the large ${h.type} model (timestamp queries, unquantized; each kernel in its own timed pass, so every row carries ~10 µs of pass overhead per dispatch): one decode step ${dT.toFixed(3)} ms against ${(1000 / h.decode_tokens_per_s).toFixed(3)} ms per token on the wall clock; one ${promptTokens}-token prefill ${pT.toFixed(3)} ms.`,
    '',
    '| kernel | decode ms | decode % | prefill ms | prefill % |',
    '|---|---:|---:|---:|---:|',
  );
  for (const [name, v] of [...byName].sort((a, b) => b[1].d - a[1].d))
    L.push(`| ${name} | ${v.d.toFixed(3)} | ${pct(v.d / dT)} | ${v.p.toFixed(3)} | ${pct(v.p / pT)} |`);
  L.push('');
}

function nodeLlamaCppVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(REPO, 'node_modules/node-llama-cpp/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function report(dir: string): string {
  const runs = [
    ...new Set(
      readdirSync(dir)
        .map((f) => /^(run\d+)-/.exec(f)?.[1])
        .filter((x): x is string => !!x),
    ),
  ].sort();
  // The tables come from the latest run with a full set; later runs may be repeats of part of it.
  const last = [...runs].reverse().find((r) => existsSync(join(dir, `${r}-gpu-large.json`)) || existsSync(join(dir, `${r}-gpu-small.json`))) ?? runs.at(-1)!;
  const first = runs[0]!;
  const gpu = (run: string, name: string): GpuRun | null => readRun<GpuRun>(dir, run, `gpu-${name}.json`);
  const small = gpu(last, 'small');
  const large = gpu(last, 'large');
  const robust = gpu(last, 'robust');
  const base = small ?? large;
  if (!base) throw new Error(`no ${last}-gpu-*.json in ${dir}`);
  const device = argValue('--device') ?? base.adapter ?? 'unknown GPU';
  const rel = relative(REPO, dir);
  const L: string[] = [];
  L.push(
    `Measured on a lent **${device}** (${base.machine.cpu}, ${base.machine.memory_gib.toFixed(0)} GiB) on ${base.date.slice(0, 10)}, commit ${base.machine.git}, by \`bench/device/run.sh main\` (packed by \`bench/device/pack.sh\`): hearth in Node through Dawn on NVIDIA’s Vulkan driver (robustness off unless said), llama.cpp’s Vulkan build (node-llama-cpp ${base.node_llama_cpp ?? nodeLlamaCppVersion()}, every layer on the GPU) on the same GGUF files, in one run. Prompt ${base.prompt_tokens} tokens in one batch, then ${base.decode_tokens} greedy decode steps. Ceilings: hearth’s WGSL probes on the same adapter (1 GiB streaming read; a 2048² f32 matmul without matrix units, which WebGPU does not expose; on this GPU the prefill kernel now beats that probe, so its “% of matmul ceiling” passes 100 % and the probe is a floor, not a ceiling). The raw files are in \`${rel}/\`; this section is \`npx tsx bench/gpu.ts --report ${rel}${argValue('--device') ? ` --device '${argValue('--device')}'` : ''} --write\`.`,
    '',
  );
  const cuda = readRun<GpuRun>(dir, first, 'gpu-cuda-small.json');
  if (cuda && cuda.llama.length === 0 && cuda.failures.length > 0) {
    const why = /CUDA error: ([^\n]+)/.exec(cuda.failures.map((f) => f.error).join('\n'))?.[1] ?? cuda.failures[0]!.error.slice(0, 200);
    L.push(
      `llama.cpp’s CUDA build is not in the table: node-llama-cpp’s prebuilt libggml-cuda.so (159 MB, sent in two halves) loads, then aborts at its first kernel with “${why.trim()}” on this machine’s driver (580.159.04): its kernels are PTX from a newer CUDA toolchain than the driver can JIT. Building llama.cpp for sm_90 on the lent machine would take most of a 15-minute lease. The Vulkan build is the like-for-like peer anyway: the same driver and API path that Dawn uses.`,
      '',
    );
  }
  for (const r of [small, large]) if (r) peerTable(L, r, r.llama);
  const lf = large?.hearth.find((h) => h.type === 'f32');
  if (large && lf) profileTable(L, lf, large.prompt_tokens);
  // Every large-model run of the same runtime code (the last run's and any later repeats): GPU time
  // against the wall clock, and the same-run ratio to llama.cpp.
  const repeats = readdirSync(dir)
    .filter((f) => /^run\d+-gpu-large(-[a-z])?\.json$/.test(f) && f.split('-')[0]! >= last)
    .sort();
  if (repeats.length > 1) {
    const sum = (k: KernelTimeRow[] | undefined): number => (k ?? []).reduce((a, x) => a + x.ms, 0);
    L.push(
      `**Run to run** (large model; ${repeats.join(', ')}, the same runtime code): GPU time per step (timestamp queries) hardly moves, while the wall clock of both hearth and llama.cpp swings by up to 2× between runs minutes apart, in step with each other: the lent machine’s host side (a virtual machine) is noisy, and a step that waits on the host for its readback pays for it. Same-run ratios to llama.cpp move less, but they move too; the GPU-time columns are the stable figures.`,
      '',
      '| run | type | hearth decode ms: wall / GPU | hearth prefill ms: wall / GPU | llama.cpp decode tok/s | hearth ÷ llama.cpp decode |',
      '|---|---|---:|---:|---:|---:|',
    );
    for (const f of repeats) {
      const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as GpuRun;
      for (const h of r.hearth) {
        const vk = r.llama.find((x) => x.backend === 'llama.cpp-vulkan' && x.model === basename(benchModelPath(h.type, r.shape)));
        L.push(
          `| ${f.replace('.json', '')} | ${h.type} | ${f2(1000 / h.decode_tokens_per_s)} / ${f2(sum(h.profile?.decode))} | ${(((1000 * r.prompt_tokens) / h.prefill_tokens_per_s) as number).toFixed(1)} / ${sum(h.profile?.prefill).toFixed(1)} | ${vk ? f0(vk.decode_tokens_per_s) : '—'} | ${vk ? f2(h.decode_tokens_per_s / vk.decode_tokens_per_s) : '—'} |`,
        );
      }
    }
    L.push('');
  }
  const rq = robust?.hearth[0];
  const lq = large?.hearth.find((h) => h.type === rq?.type);
  if (rq && lq) {
    const sum = (k: KernelTimeRow[] | undefined): number => (k ?? []).reduce((a, x) => a + x.ms, 0);
    L.push(
      `**What a web page costs here** (Dawn’s robustness checks, always on in Chromium), large ${rq.type} model, GPU time from timestamp queries: a decode step ${f2(sum(rq.profile?.decode))} ms with them against ${f2(sum(lq.profile?.decode))} ms without (${pct(sum(rq.profile?.decode) / sum(lq.profile?.decode) - 1)}), a ${large?.prompt_tokens ?? ''}-token prefill ${sum(rq.profile?.prefill).toFixed(1)} against ${sum(lq.profile?.prefill).toFixed(1)} ms. (The wall clock of that run said ${f0(rq.decode_tokens_per_s)} against ${f0(lq.decode_tokens_per_s)} tok/s decode and ${f0(rq.prefill_tokens_per_s)} against ${f0(lq.prefill_tokens_per_s)} tok/s prefill, but it is a different run, and the next table shows how far the wall clock moves between runs.) On SwiftShader the same checks cost Chromium 17–29 % of decode (the main table).`,
      '',
    );
  }
  // Before and after the kernel changes of this session (run1 is the first H100 profile).
  const b = gpu(first, 'large');
  if (b && large && first !== last) {
    L.push(
      `**Before and after** (${first}: commit ${b.machine.git}; ${last}: ${large.machine.git}; same machine kind, same files): the matvec now takes up to 16 tokens (it took 4, so batched decode and verify passes of 5–15 tokens fell to the 64×64 tiled kernel), decode attention is split over the key chunks (flash-decoding; a decode step had only 16 workgroups), and the tiled matmul’s workgroup rows are padded against a 16-way bank conflict.`,
      '',
      '| large model | prefill tok/s before → after | decode tok/s before → after | decode GPU ms / step before → after | prefill GPU ms before → after |',
      '|---|---:|---:|---:|---:|',
    );
    const gpuMs = (k: KernelTimeRow[] | undefined): string => (k ?? []).reduce((a, x) => a + x.ms, 0).toFixed(2);
    for (const h of large.hearth) {
      const o = b.hearth.find((x) => x.type === h.type);
      if (o)
        L.push(
          `| ${h.type} | ${f0(o.prefill_tokens_per_s)} → ${f0(h.prefill_tokens_per_s)} | ${f0(o.decode_tokens_per_s)} → ${f0(h.decode_tokens_per_s)} | ${gpuMs(o.profile?.decode)} → ${gpuMs(h.profile?.decode)} | ${gpuMs(o.profile?.prefill)} → ${gpuMs(h.profile?.prefill)} |`,
        );
    }
    L.push(
      '',
      `(${first}'s GPU times are sums of timestamps that Dawn rounded to 65.5 µs; ${last}'s are unrounded. One run's wall clock is noisy: see the run-to-run table.)`,
      '',
    );
  }
  const serving = readRun<ServingFile>(dir, last, 'serving.json');
  const servingBefore = readRun<ServingFile>(dir, first, 'serving.json');
  if (serving) {
    L.push(
      `**Serving** (issue 5) on the large Q4_0 model through the public API, \`${serving.command.replace(/--json \S+/, '').trim()}\`: each row is N different chats one after another, then N others at once (max_tokens 32). Decode phase = tokens after each first ÷ time any request was decoding.`,
      '',
      `| chats | decode-phase tok/s sequential → concurrent | ratio | end-to-end ratio | concurrent TTFT p50 / p95 s |${servingBefore && first !== last ? ` ratio in ${first} |` : ''}`,
      `|---:|---:|---:|---:|---:|${servingBefore && first !== last ? '---:|' : ''}`,
    );
    for (const c of serving.concurrency) {
      const o = servingBefore?.concurrency.find((x) => x.n === c.n);
      L.push(
        `| ${c.n} | ${f0(c.sequential.decode_phase_tokens_per_s)} → ${f0(c.concurrent.decode_phase_tokens_per_s)} | ${f2(c.decode_phase_ratio)}× | ${f2(c.ratio)}× | ${f2(c.concurrent.ttft_p50_s)} / ${f2(c.concurrent.ttft_p95_s)} |${o && first !== last ? ` ${f2(o.decode_phase_ratio)}× |` : ''}`,
      );
    }
    const w = serving.prefix.warm[0];
    L.push(
      '',
      `A prefix-cache hit on a ~1,000-token system prompt (${w?.cached_tokens ?? '?'} of ${w?.prompt_tokens ?? '?'} prompt tokens cached): TTFT ${f2(serving.prefix.cold_ttft_median_s * 1000)} ms cold → ${f2(serving.prefix.warm_ttft_median_s * 1000)} ms, ${f2(serving.prefix.ratio)}×.`,
      '',
    );
  }
  const spec = readRun<SpecFile>(dir, last, 'spec.json');
  if (spec) {
    L.push(
      `**Speculative decoding** (issue 7): target \`${spec.target}\` (F32), draft \`${spec.draft}\` (the same weights in Q4_0), ${spec.tokens} new tokens per request, medians of ${spec.rounds} alternating runs. Step costs are milliseconds per step (plain decode step; drafting all levels; the target’s verify pass).`,
      '',
      '| T | drafter | tree | verifier | plain tok/s | speculative tok/s | speedup | tokens / target pass | plain step ms | draft ms | verify ms | identical |',
      '|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const r of spec.rows)
      L.push(
        `| ${r.T} | ${r.drafter} | ${r.tree} | ${r.method} | ${f0(r.plain)} | ${f0(r.spec)} | ${f2(r.spec / r.plain)}× | ${f2(r.perPass)} | ${f2(r.plainStepMs)} | ${f2(r.draftMs)} | ${f2(r.verifyMs)} | ${r.identical === null ? '–' : r.identical ? 'yes' : 'NO'} |`,
      );
    L.push(
      '',
      'SpecHub against RRS at equal tree size (binary, width 2, depth 3), tokens per target pass over 16 concurrent requests (verify steps in brackets):',
      '',
      '| T | drafter | SpecHub | RRS without replacement | RRS |',
      '|---:|---|---:|---:|---:|',
    );
    for (const T of [0.6, 1])
      for (const d of [...new Set(spec.acc.map((a) => a.drafter))]) {
        const pick = (m: string): string => {
          const a = spec.acc.find((x) => x.T === T && x.drafter === d && x.method === m);
          return a ? `${f2(a.perPass)} (${a.steps})` : '—';
        };
        L.push(`| ${T} | ${d} | ${pick('spechub')} | ${pick('rrs-wo')} | ${pick('rrs')} |`);
      }
    L.push('');
  }
  const fails = [small, large, robust].flatMap((r) => (r ? r.failures.map((f) => `${r.shape}: ${f.what}: ${f.error.slice(0, 300)}`) : []));
  if (fails.length > 0) L.push('Failures in this run:', '', ...fails.map((f) => `- ${f}`), '');
  return L.join('\n');
}

const reportDir = argValue('--report');
if (reportDir) {
  const text = report(reportDir);
  if (process.argv.includes('--write')) writeBenchmarksSection('gpu', `## Real GPU: NVIDIA H100 (a lent machine)\n\n${text}`, { first: true });
  console.log(text);
} else {
  try {
    await run();
  } catch (e) {
    log(`bench/gpu.ts failed: ${msg(e)}`);
    process.exit(1);
  }
}

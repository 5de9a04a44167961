// `npm run bench`: hearth (Node and Chromium), wllama, llama.cpp and the device ceilings on the benchmark models; JSON on stdout, table in BENCHMARKS.md.
// A new backend adds a phase in main() that pushes Row objects; the tables follow from the rows.

import { readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename } from 'node:path';
import { cpuModel, machineInfo, writeBenchmarksSection } from './report.js';
import { benchPrompt, type BenchResult, type KernelTime } from '../src/engine/bench.js';
import type { Ceilings } from '../src/gpu/probes.js';
import type { PageBenchOptions, PageBenchResult } from '../demo/bench.js';
import { BENCH_OUT, BENCH_SHAPE, BENCH_TYPES, TOKENIZER_CHECK_TEXT, TYPE_MIX, ensureBenchModels, type BenchType } from './models.js';

const log = (s: string): void => {
  process.stderr.write(`bench: ${s}\n`);
};

type BackendId = 'hearth-node' | 'hearth-chromium' | 'wllama' | 'llama.cpp';

const BACKEND_LABEL: Record<BackendId, string> = {
  'hearth-node': 'hearth, Node (Dawn, robustness off)',
  'hearth-chromium': 'hearth, Chromium worker (robustness on)',
  wllama: 'wllama (Chromium, WASM)',
  'llama.cpp': 'llama.cpp native CPU',
};

interface Row {
  backend: BackendId;
  type: BenchType;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  prompt_tokens: number;
  decode_tokens: number;
  load_ms: number;
  threads?: number;
  /** hearth/wllama (same page, same file); null without a wllama number. */
  ratio_to_wllama: { prefill: number; decode: number } | null;
  /**
   * hearth rows only, against the ceilings of the adapter they ran on: decode = weight bytes per
   * token × tokens/s ÷ read bandwidth; prefill = matmul FLOPs per token × tokens/s ÷ matmul rate.
   */
  ratio_to_ceiling: { prefill: number; decode: number } | null;
}

interface Failure {
  backend: BackendId | 'ceilings';
  type?: BenchType;
  error: string;
}

interface ModelRecord {
  file: string;
  file_bytes: number;
  mix: string;
  weight_bytes_per_token: number;
  flops_per_token: number;
}

interface TokenizerCheck {
  text: string;
  hearth: number[];
  llama_cpp: number[];
  identical: boolean;
}

/** The JSON object `npm run bench` prints. */
export interface BenchRun {
  date: string;
  command: string;
  wall_s: number;
  phase_s: Record<string, number>;
  machine: { cpu: string; cores: number; memory_gib: number; load_average_start: number[]; load_average_end: number[]; node: string; git: string };
  adapters: { node: string; chromium: string };
  chromium: string;
  cross_origin_isolated: boolean;
  node_llama_cpp: string;
  settings: { prompt_tokens: number; decode_tokens: number; threads: number; shape: typeof BENCH_SHAPE };
  ceilings: { node: Ceilings | null; chromium: Ceilings | null };
  models: Partial<Record<BenchType, ModelRecord>>;
  rows: Row[];
  profiles: Partial<Record<BenchType, { decode: KernelTime[]; prefill: KernelTime[] } | null>>;
  tokenizer_check: TokenizerCheck | null;
  failures: Failure[];
}

/** Flags: --types f32,q4_k  --prompt-tokens N  --decode-tokens N  --no-write (leave BENCHMARKS.md alone); --render FILE (see main). */
function args(): { types: BenchType[]; promptTokens: number; decodeTokens: number; write: boolean } {
  const a = process.argv.slice(2);
  const val = (name: string): string | undefined => {
    const i = a.indexOf(`--${name}`);
    return i >= 0 ? a[i + 1] : undefined;
  };
  const types = (val('types')?.split(',') ?? [...BENCH_TYPES]) as BenchType[];
  for (const t of types) if (!BENCH_TYPES.includes(t)) throw new Error(`unknown type ${t}; one of ${BENCH_TYPES.join(', ')}`);
  return {
    types,
    promptTokens: Number(val('prompt-tokens') ?? 128),
    decodeTokens: Number(val('decode-tokens') ?? 128),
    write: !a.includes('--no-write'),
  };
}

const msg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function ceilingRatio(r: BenchResult, c: Ceilings | null): Row['ratio_to_ceiling'] {
  if (!c || !(c.readGBps > 0) || !(c.matmulGflops > 0)) return null;
  return {
    prefill: (r.flops_per_token * r.prefill_tokens_per_s) / (c.matmulGflops * 1e9),
    decode: (r.weight_bytes_per_token * r.decode_tokens_per_s) / (c.readGBps * 1e9),
  };
}

async function main(): Promise<number> {
  // `--render FILE`: rewrite the section from a run's JSON (this script's stdout) without running.
  const from = process.argv.indexOf('--render');
  if (from >= 0) {
    const file = process.argv[from + 1];
    if (!file) throw new Error('--render takes the JSON file a run printed');
    writeBenchmarksSection('bench', renderMarkdown(JSON.parse(readFileSync(file, 'utf8')) as BenchRun), { first: true });
    log(`rewrote the bench section of BENCHMARKS.md from ${file}`);
    return 0;
  }
  const o = args();
  const t0 = performance.now();
  const loadStart = loadavg();
  log(`machine: ${cpuModel()}, load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  const paths = ensureBenchModels(o.types, log);
  const rows: Row[] = [];
  const failures: Failure[] = [];
  const models: BenchRun['models'] = {};
  const profiles: BenchRun['profiles'] = {};
  const phaseS: Record<string, number> = {};
  const phase = async (name: string, fn: () => Promise<void>): Promise<void> => {
    const ts = performance.now();
    await fn();
    phaseS[name] = (performance.now() - ts) / 1000;
    log(`${name}: ${phaseS[name].toFixed(1)} s`);
  };

  // ---- hearth in Node (Dawn, robustness off), the ceilings, the tokenizer -----------------------
  let nodeAdapter = '';
  let nodeCeilings: Ceilings | null = null;
  let vocabSize = 0;
  let hearthCheckTokens: number[] = [];
  await phase('hearth node', async () => {
    // node-runtime registers the WGSL hook before it loads src/ (bin/hearth.js does the same for the CLI).
    const { acquireNodeDevice, describeAdapter, probeCeilings, loadModel, fileSource, benchModel } = await import('./node-runtime.js');
    const ctx = await acquireNodeDevice({ robustness: false });
    nodeAdapter = describeAdapter(ctx.adapter);
    log(`node adapter: ${nodeAdapter}`);
    try {
      nodeCeilings = await probeCeilings(ctx);
      log(`node ceilings: read ${nodeCeilings.readGBps.toFixed(2)} GB/s, matmul ${nodeCeilings.matmulGflops.toFixed(2)} GFLOP/s`);
    } catch (e) {
      failures.push({ backend: 'ceilings', error: `node: ${msg(e)}` });
    }
    for (const type of o.types) {
      const src = await fileSource(paths[type]);
      try {
        const tl = performance.now();
        const model = await loadModel(ctx, src);
        const loadMs = performance.now() - tl;
        try {
          vocabSize = model.cfg.vocabSize;
          if (hearthCheckTokens.length === 0) hearthCheckTokens = model.tokenizer.encode(TOKENIZER_CHECK_TEXT, { addBos: false, parseSpecial: true });
          const r = await benchModel(model, { promptTokens: o.promptTokens, decodeTokens: o.decodeTokens, profile: true });
          profiles[type] = r.profile ?? null;
          models[type] = {
            file: basename(paths[type]),
            file_bytes: statSync(paths[type]).size,
            mix: TYPE_MIX[type].note,
            weight_bytes_per_token: r.weight_bytes_per_token,
            flops_per_token: r.flops_per_token,
          };
          rows.push({
            backend: 'hearth-node',
            type,
            prefill_tokens_per_s: r.prefill_tokens_per_s,
            decode_tokens_per_s: r.decode_tokens_per_s,
            prompt_tokens: r.prompt_tokens,
            decode_tokens: r.decode_tokens,
            load_ms: loadMs,
            ratio_to_wllama: null,
            ratio_to_ceiling: ceilingRatio(r, nodeCeilings),
          });
          log(`hearth node ${type}: prefill ${r.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${r.decode_tokens_per_s.toFixed(1)} tok/s`);
        } finally {
          model.destroy();
        }
      } catch (e) {
        failures.push({ backend: 'hearth-node', type, error: msg(e) });
        log(`hearth node ${type} failed: ${msg(e)}`);
      } finally {
        await src.close?.();
      }
    }
  });

  // ---- hearth in a Chromium worker and wllama, one page for all types ---------------------------
  let browserAdapter = '';
  let chromium = '';
  let browserCeilings: Ceilings | null = null;
  let crossOriginIsolated = false;
  await phase('chromium (hearth + wllama)', async () => {
    const { startBrowserSession } = await import('./browser.js');
    const session = await startBrowserSession({ modelDirs: [BENCH_OUT], production: true });
    chromium = session.browser.version();
    try {
      const page = await session.newPage('bench.html');
      await page.waitForFunction(() => typeof window.hearthBench === 'function');
      for (const type of o.types) {
        const opts: PageBenchOptions = {
          model: `/models/${encodeURIComponent(basename(paths[type]))}`,
          promptTokens: o.promptTokens,
          decodeTokens: o.decodeTokens,
          ceilings: true,
          wllama: true,
          wllamaThreads: cpus().length,
        };
        // Errors come back as data: an exception thrown across page.evaluate loses its code.
        const out = await page.evaluate(async (x): Promise<{ ok: true; r: PageBenchResult } | { ok: false; error: string }> => {
          try {
            return { ok: true, r: await window.hearthBench(x) };
          } catch (e) {
            return { ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
          }
        }, opts);
        if (!out.ok) {
          failures.push({ backend: 'hearth-chromium', type, error: out.error });
          log(`chromium ${type} failed: ${out.error}`);
          continue;
        }
        const r = out.r;
        browserAdapter = r.adapter;
        crossOriginIsolated = r.cross_origin_isolated;
        browserCeilings = r.ceilings ?? browserCeilings;
        const w = r.wllama;
        rows.push({
          backend: 'hearth-chromium',
          type,
          prefill_tokens_per_s: r.prefill_tokens_per_s,
          decode_tokens_per_s: r.decode_tokens_per_s,
          prompt_tokens: r.prompt_tokens,
          decode_tokens: r.decode_tokens,
          load_ms: r.load_ms,
          ratio_to_wllama: w ? { prefill: r.prefill_tokens_per_s / w.prefill_tokens_per_s, decode: r.decode_tokens_per_s / w.decode_tokens_per_s } : null,
          ratio_to_ceiling: ceilingRatio(r, browserCeilings),
        });
        log(`hearth chromium ${type}: prefill ${r.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${r.decode_tokens_per_s.toFixed(1)} tok/s`);
        if (w) {
          rows.push({
            backend: 'wllama',
            type,
            prefill_tokens_per_s: w.prefill_tokens_per_s,
            decode_tokens_per_s: w.decode_tokens_per_s,
            prompt_tokens: w.prompt_tokens,
            decode_tokens: w.decode_tokens,
            load_ms: w.load_ms,
            threads: w.threads,
            ratio_to_wllama: { prefill: 1, decode: 1 },
            ratio_to_ceiling: null,
          });
          log(`wllama ${type}: prefill ${w.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${w.decode_tokens_per_s.toFixed(1)} tok/s (${w.threads} threads)`);
        }
      }
    } finally {
      await session.close();
    }
  });

  // ---- llama.cpp on the CPU, in its own process ------------------------------------------------
  let nodeLlamaCpp = '';
  const checks: TokenizerCheck[] = [];
  await phase('llama.cpp', async () => {
    const { llamaCppBench } = await import('./llama-cpp.js');
    if (vocabSize === 0) throw new Error('no hearth run gave the vocabulary size');
    const prompt = benchPrompt(vocabSize, o.promptTokens);
    try {
      const run = await llamaCppBench(
        o.types.map((t, i) => ({
          modelPath: paths[t],
          promptTokens: prompt,
          decodeTokens: o.decodeTokens,
          threads: cpus().length,
          ...(i === 0 ? { checkText: TOKENIZER_CHECK_TEXT } : {}),
        })),
        log,
      );
      nodeLlamaCpp = run.node_llama_cpp;
      run.results.forEach((r, i) => {
        const type = o.types[i]!;
        if (i === 0) {
          checks.push({
            text: TOKENIZER_CHECK_TEXT,
            hearth: hearthCheckTokens,
            llama_cpp: r.check_tokens,
            identical: JSON.stringify(hearthCheckTokens) === JSON.stringify(r.check_tokens),
          });
        }
        const w = rows.find((x) => x.backend === 'wllama' && x.type === type);
        rows.push({
          backend: 'llama.cpp',
          type,
          prefill_tokens_per_s: r.prefill_tokens_per_s,
          decode_tokens_per_s: r.decode_tokens_per_s,
          prompt_tokens: r.prompt_tokens,
          decode_tokens: r.decode_tokens,
          load_ms: r.load_ms,
          threads: r.threads,
          ratio_to_wllama: w ? { prefill: r.prefill_tokens_per_s / w.prefill_tokens_per_s, decode: r.decode_tokens_per_s / w.decode_tokens_per_s } : null,
          ratio_to_ceiling: null,
        });
      });
    } catch (e) {
      failures.push({ backend: 'llama.cpp', error: msg(e) });
      log(`llama.cpp failed: ${msg(e)}`);
    }
  });

  // hearth Node rows get their wllama ratio once wllama has run.
  for (const r of rows) {
    if (r.backend !== 'hearth-node') continue;
    const w = rows.find((x) => x.backend === 'wllama' && x.type === r.type);
    if (w) r.ratio_to_wllama = { prefill: r.prefill_tokens_per_s / w.prefill_tokens_per_s, decode: r.decode_tokens_per_s / w.decode_tokens_per_s };
  }
  const check = checks[0] ?? null;
  if (check && !check.identical) failures.push({ backend: 'llama.cpp', error: 'hearth and llama.cpp tokenize the check text differently' });

  const wallS = (performance.now() - t0) / 1000;
  const result: BenchRun = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    wall_s: wallS,
    phase_s: phaseS,
    machine: {
      ...machineInfo(),
      load_average_start: loadStart,
      load_average_end: loadavg(),
    },
    adapters: { node: nodeAdapter, chromium: browserAdapter },
    chromium,
    cross_origin_isolated: crossOriginIsolated,
    node_llama_cpp: nodeLlamaCpp,
    settings: { prompt_tokens: o.promptTokens, decode_tokens: o.decodeTokens, threads: cpus().length, shape: BENCH_SHAPE },
    ceilings: { node: nodeCeilings, chromium: browserCeilings },
    models,
    rows,
    profiles,
    tokenizer_check: check,
    failures,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  if (o.write) {
    writeBenchmarksSection('bench', renderMarkdown(result), { first: true });
    log('rewrote the bench section of BENCHMARKS.md');
  }
  log(`wall time ${wallS.toFixed(0)} s${failures.length > 0 ? `, ${failures.length} failure(s)` : ''}`);
  return failures.length > 0 ? 1 : 0;
}

// ---- BENCHMARKS.md ----------------------------------------------------------------------------

const f1 = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const pct = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : `${(100 * x).toFixed(x < 0.1 ? 2 : 1)}%`);
const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;

function renderMarkdown(r: BenchRun): string {
  const L: string[] = [];
  const day = r.date.slice(0, 10);
  const s = r.settings;
  L.push(`## Peers and ceilings on the benchmark models (${day})`, '');
  L.push(
    `Machine: ${r.machine.cpu}, ${r.machine.memory_gib.toFixed(0)} GiB, no GPU; load average ${r.machine.load_average_start.map((x) => x.toFixed(2)).join(' / ')} at the start,`,
    `${r.machine.load_average_end.map((x) => x.toFixed(2)).join(' / ')} at the end (the machine is shared: numbers move with the load). Node ${r.machine.node}, commit ${r.machine.git}.`,
    `Adapters: Node (Dawn) — ${r.adapters.node || '–'}; Chromium ${r.chromium} — ${r.adapters.chromium || '–'}. Peers: wllama in the same page${r.cross_origin_isolated ? ' (cross-origin isolated, so multi-threaded)' : ''}, llama.cpp through node-llama-cpp ${r.node_llama_cpp || '–'} on the CPU; both with ${s.threads} threads.`,
    '',
    `Command: \`${r.command}\` (wall time ${r.wall_s.toFixed(0)} s: ${Object.entries(r.phase_s)
      .map(([k, v]) => `${k} ${v.toFixed(0)} s`)
      .join(', ')}).`,
    '',
  );
  L.push(
    `Models (\`bench/models.ts\`, seeded random weights): llama, d=${s.shape.dModel}, ${s.shape.numHeads} heads / ${s.shape.numKvHeads} KV heads, ${s.shape.numLayers} layers, FF ${s.shape.ffDim}, llama-bpe vocabulary without the lone byte tokens 0x80–0xFF (so no output is invalid UTF-8 for wllama). ${s.prompt_tokens} prompt tokens in one batch, then ${s.decode_tokens} greedy decode steps (end-of-generation ignored).`,
    '',
    '| type | file | matrices | weight bytes / token | matmul FLOPs / token |',
    '|---|---:|---|---:|---:|',
  );
  for (const [type, m] of Object.entries(r.models))
    L.push(`| ${type} | ${mb(m.file_bytes)} | ${m.mix} | ${mb(m.weight_bytes_per_token)} | ${(m.flops_per_token / 1e6).toFixed(1)} M |`);
  L.push('');
  const c = r.ceilings;
  const ceil = (x: Ceilings | null): string => (x ? `read ${x.readGBps.toFixed(2)} GB/s, matmul ${x.matmulGflops.toFixed(2)} GFLOP/s` : '–');
  L.push(`Device ceilings (\`src/gpu/probes.ts\`, WGSL probes on the same adapter): Node ${ceil(c.node)}; Chromium ${ceil(c.chromium)}.`, '');
  L.push(
    '| type | backend | prefill tok/s | decode tok/s | prefill ÷ wllama | decode ÷ wllama | prefill ÷ ceiling | decode ÷ ceiling |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  );
  const order: BackendId[] = ['hearth-node', 'hearth-chromium', 'wllama', 'llama.cpp'];
  const types = [...new Set(r.rows.map((x) => x.type))];
  for (const t of types)
    for (const b of order) {
      const x = r.rows.find((y) => y.type === t && y.backend === b);
      if (!x) continue;
      L.push(
        `| ${t} | ${BACKEND_LABEL[b]} | ${f1(x.prefill_tokens_per_s)} | ${f1(x.decode_tokens_per_s)} | ${ratio(x.ratio_to_wllama?.prefill)} | ${ratio(x.ratio_to_wllama?.decode)} | ${pct(x.ratio_to_ceiling?.prefill)} | ${pct(x.ratio_to_ceiling?.decode)} |`,
      );
    }
  L.push(
    '',
    'Ratios: hearth (or llama.cpp) ÷ wllama on the same file. Ceiling: decode = weight bytes per token × tok/s ÷ the read ceiling; prefill = matmul FLOPs per token × tok/s ÷ the matmul ceiling, each against the adapter the row ran on (Chromium keeps robustness on, so its ceilings are its own). wllama gets a text prompt of the same token count (its API takes no token ids; checked against its `prompt_n`); hearth and llama.cpp get the same token ids.',
    '',
  );
  for (const [type, p] of Object.entries(r.profiles)) {
    if (!p) continue;
    const dTotal = p.decode.reduce((a, k) => a + k.ms, 0);
    const pTotal = p.prefill.reduce((a, k) => a + k.ms, 0);
    L.push(
      `GPU time per kernel, ${type}, Node (timestamp queries): one decode step ${dTotal.toFixed(2)} ms, one ${s.prompt_tokens}-token prefill ${pTotal.toFixed(1)} ms.`,
      '',
    );
    L.push('| kernel | decode ms | decode % | prefill ms | prefill % |', '|---|---:|---:|---:|---:|');
    const names = [...new Set([...p.decode.map((k) => k.kernel), ...p.prefill.map((k) => k.kernel)])];
    for (const n of names) {
      const d = p.decode.find((k) => k.kernel === n)?.ms ?? 0;
      const q = p.prefill.find((k) => k.kernel === n)?.ms ?? 0;
      L.push(`| ${n} | ${d.toFixed(3)} | ${pct(dTotal > 0 ? d / dTotal : NaN)} | ${q.toFixed(2)} | ${pct(pTotal > 0 ? q / pTotal : NaN)} |`);
    }
    L.push('');
  }
  if (r.tokenizer_check)
    L.push(
      `Tokenizer check: hearth and llama.cpp tokenize an ASCII sentence of ${r.tokenizer_check.hearth.length} tokens on the filtered vocabulary ${r.tokenizer_check.identical ? 'identically' : '**differently**'}.`,
      '',
    );
  if (r.failures.length > 0) {
    L.push('Failures in this run:', '');
    for (const f of r.failures) L.push(`- ${f.backend}${f.type ? ` ${f.type}` : ''}: ${f.error.replace(/\n/g, ' ')}`);
    L.push('');
  }
  return L.join('\n');
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);

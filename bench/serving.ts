// `npm run bench:serving`: serving through the public API (LocalEngine + chat.completions.create, streamed) — aggregate
// decode tok/s of 1..16 concurrent chats against the same kind of requests one after another, time to first token, and
// the time to first token of a ~1,000-token system prompt seen before (prefix cache) against one never seen.
// Markdown on stdout; `--write` replaces the section between the serving markers in BENCHMARKS.md.
// Flags: --model PATH | --type q4_0  --opt key=value (engine load option, repeatable; default maxContext=2048)
//        --concurrency 1,2,4,8,16  --repeats 3 (sequential/concurrent pairs per N)  --max-tokens 32  --user-tokens 24  --system-tokens 1000  --samples 2 (cold and warm each)
//        --robust (Dawn bounds checks on)  --quick (1,2,4 chats, 8 tokens, 256-token system prompt, 1 sample)  --json FILE  --write

import { statSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { loadavg } from 'node:os';
import { basename, relative } from 'node:path';
import { cpuModel, machineInfo, REPO, writeBenchmarksSection } from './report.js';
import type { ChatCompletionMessageParam, LocalEngine, LocalEngineOptions, ModelConfig } from '../src/index.js';
import { CORPUS } from '../test/fixtures/vocab.js';
import { rng } from '../test/fixtures/random.js';
import { BENCH_TYPES, TYPE_MIX, ensureBenchModels, type BenchType } from './models.js';

// src/ imports WGSL with Vite's `?raw`; the hook must be registered before src/ is imported (dynamically, below).
register('../bin/wgsl-hooks.mjs', import.meta.url);

const log = (s: string): void => {
  process.stderr.write(`bench:serving: ${s}\n`);
};

interface Options {
  model: string | null;
  type: BenchType;
  engineOptions: Record<string, number | boolean | string>;
  concurrency: number[];
  repeats: number;
  maxTokens: number;
  userTokens: number;
  systemTokens: number;
  samples: number;
  prefixMaxTokens: number;
  robust: boolean;
  quick: boolean;
  json: string | null;
  write: boolean;
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    model: null,
    type: 'q4_0',
    engineOptions: { maxContext: 2048 },
    concurrency: quick ? [1, 2, 4] : [1, 2, 4, 8, 16],
    repeats: quick ? 1 : 3,
    maxTokens: quick ? 8 : 32,
    userTokens: 24,
    systemTokens: quick ? 256 : 1000,
    samples: quick ? 1 : 2,
    prefixMaxTokens: 4,
    robust: false,
    quick,
    json: null,
    write: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (): number => {
      const v = val();
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${a} takes a positive integer, not ${v}`);
      return n;
    };
    switch (a) {
      case '--model':
        o.model = val();
        break;
      case '--type': {
        const t = val() as BenchType;
        if (!BENCH_TYPES.includes(t)) throw new Error(`unknown type ${t}; one of ${BENCH_TYPES.join(', ')}`);
        o.type = t;
        break;
      }
      case '--opt': {
        const kv = val();
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new Error(`--opt takes key=value, not ${kv}`);
        const raw = kv.slice(eq + 1);
        const num = Number(raw);
        o.engineOptions[kv.slice(0, eq)] = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(num) ? num : raw;
        break;
      }
      case '--concurrency':
        o.concurrency = val()
          .split(',')
          .map((s) => Number(s));
        if (o.concurrency.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error('--concurrency takes positive integers, e.g. 1,2,4,8,16');
        break;
      case '--repeats':
        o.repeats = int();
        break;
      case '--max-tokens':
        o.maxTokens = int();
        break;
      case '--user-tokens':
        o.userTokens = int();
        break;
      case '--system-tokens':
        o.systemTokens = int();
        break;
      case '--samples':
        o.samples = int();
        break;
      case '--robust':
        o.robust = true;
        break;
      case '--quick':
        break;
      case '--json':
        o.json = val();
        break;
      case '--write':
        o.write = true;
        break;
      default:
        throw new Error(`unknown flag ${a}`);
    }
  }
  return o;
}

// ---- prompts ----------------------------------------------------------------------------------

/** Plain English words from the corpus the benchmark vocabulary was learned from, so they tokenize well. */
const WORDS = [...new Set((CORPUS.toLowerCase().match(/[a-z]+/g) ?? []).filter((w) => w.length > 1))];

type Encode = (text: string) => number[];

/**
 * Seeded text of `tokens` tokens (as the model's tokenizer counts it), made of corpus words, whose first word is not in
 * `usedFirst` (so two prompts share no more than the chat template's opening and perhaps a token of a word). The first
 * word is added to `usedFirst`.
 */
function seededText(seed: number, tokens: number, encode: Encode, usedFirst: Set<string>): string {
  const r = rng(seed);
  let first = WORDS[Math.floor(r() * WORDS.length)]!;
  for (let k = 0; usedFirst.has(first); k++) {
    if (k > WORDS.length) throw new Error('ran out of distinct first words');
    first = WORDS[(WORDS.indexOf(first) + 1) % WORDS.length]!;
  }
  usedFirst.add(first);
  const words = [first[0]!.toUpperCase() + first.slice(1)];
  while (encode(words.join(' ')).length < tokens) {
    // Grow by an estimate of the words still missing, then trim back below to the exact count.
    const missing = tokens - encode(words.join(' ')).length;
    for (let i = 0; i < Math.max(1, Math.floor(missing / 2)); i++) words.push(WORDS[Math.floor(r() * WORDS.length)]!);
  }
  while (words.length > 1 && encode(words.join(' ')).length > tokens) words.pop();
  return words.join(' ');
}

// ---- one request ------------------------------------------------------------------------------

interface Sample {
  /** create() → first chunk with non-empty content, ms (NaN if none came). */
  ttft_ms: number;
  /** create() → end of the stream, ms. */
  total_ms: number;
  /** Absolute end time (performance.now()), for the wall time of a sequence. */
  end: number;
  /** Absolute time of the first content chunk: the request's decode phase is [first, end]. */
  first: number;
  /** Absolute times of every chunk with content (one token each on the bench models). */
  chunk_times: number[];
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  finish_reason: string | null;
}

async function chat(engine: LocalEngine, messages: ChatCompletionMessageParam[], maxTokens: number): Promise<Sample> {
  const t0 = performance.now();
  const stream = await engine.chat.completions.create({ messages, stream: true, temperature: 0, max_tokens: maxTokens });
  let usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens: number } } | undefined;
  let finish: string | null = null;
  const chunkTimes: number[] = [];
  for await (const c of stream) {
    if ((c.choices[0]?.delta.content ?? '') !== '') chunkTimes.push(performance.now());
    finish = c.choices[0]?.finish_reason ?? finish;
    if (c.usage) usage = c.usage;
  }
  const end = performance.now();
  const first = chunkTimes[0] ?? NaN;
  if (!usage) throw new Error('the stream ended without usage on its last chunk');
  return {
    ttft_ms: first - t0,
    total_ms: end - t0,
    end,
    first,
    chunk_times: chunkTimes,
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    finish_reason: finish,
  };
}

// ---- statistics -------------------------------------------------------------------------------

/** Percentile with linear interpolation between order statistics (numpy's default). */
function percentile(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const h = (s.length - 1) * p;
  const lo = Math.floor(h);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (h - lo);
}

const median = (xs: number[]): number => percentile(xs, 0.5);
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

// ---- the run ----------------------------------------------------------------------------------

interface ModeResult {
  requests: number;
  prompt_tokens: number[];
  completion_tokens: number;
  wall_s: number;
  decode_tokens_per_s: number;
  /** Tokens after each request's first ÷ the time at least one request was decoding (union of [first token, end] intervals). */
  decode_phase_tokens_per_s: number;
  /**
   * Decode tok/s while every request is decoding: content chunks in [the last request's first
   * token, the first request's end] ÷ that span (no prefill runs then). NaN when the span holds
   * fewer than 4 chunks. Sequential: the decode phase (one request decodes at a time).
   */
  all_decoding_tokens_per_s: number;
  all_decoding_s: number;
  ttft_p50_s: number;
  ttft_p95_s: number;
  finish_reasons: Record<string, number>;
  /** Per request, in creation order: TTFT and total seconds, completion tokens. */
  per_request: { ttft_s: number; total_s: number; completion_tokens: number }[];
}

interface ConcurrencyRow {
  n: number;
  sequential: ModeResult;
  concurrent: ModeResult;
  /** concurrent ÷ sequential aggregate decode tok/s. */
  ratio: number;
  /** concurrent ÷ sequential decode-phase tok/s. */
  decode_phase_ratio: number;
  /** concurrent all-decoding ÷ sequential decode-phase tok/s. */
  all_decoding_ratio: number;
  /** Every repeat's (end-to-end, decode-phase, all-decoding) ratios, in run order; this row is the repeat with the median all-decoding ratio. */
  repeats?: { ratio: number; decode_phase_ratio: number; all_decoding_ratio: number }[];
}

interface PrefixSample {
  system_tokens: number;
  prompt_tokens: number;
  cached_tokens: number;
  ttft_s: number;
}

export interface ServingRun {
  date: string;
  command: string;
  wall_s: number;
  phase_s: Record<string, number>;
  machine: {
    cpu: string;
    cores: number;
    memory_gib: number;
    load_average_start: number[];
    load_average_end: number[];
    node: string;
    git: string;
    adapter: string;
  };
  model: { file: string; file_bytes: number; type: string; config: ModelConfig; load_s: number };
  engine_options: Record<string, number | boolean | string>;
  robustness: boolean;
  settings: {
    concurrency: number[];
    repeats?: number;
    max_tokens: number;
    user_tokens: number;
    system_tokens: number;
    samples: number;
    prefix_max_tokens: number;
  };
  warmup_s: number;
  concurrency: ConcurrencyRow[];
  prefix: { cold: PrefixSample[]; warm: PrefixSample[]; cold_ttft_median_s: number; warm_ttft_median_s: number; ratio: number };
}

/** Total length of the union of intervals. */
function unionLength(intervals: [number, number][]): number {
  const xs = intervals.filter(([a, b]) => Number.isFinite(a) && b > a).sort((p, q) => p[0] - q[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of xs) {
    if (a > end) {
      total += b - a;
      end = b;
    } else if (b > end) {
      total += b - end;
      end = b;
    }
  }
  return total;
}

/** Content chunks while every request decodes ([latest first token, earliest end]) per second, and that span. */
function allDecoding(samples: Sample[]): { rate: number; span_s: number } {
  const a = Math.max(...samples.map((s) => s.first));
  const b = Math.min(...samples.map((s) => s.end));
  const n = sum(samples.map((s) => s.chunk_times.filter((t) => t > a && t <= b).length));
  return b > a && n >= 4 ? { rate: n / ((b - a) / 1000), span_s: (b - a) / 1000 } : { rate: NaN, span_s: Math.max(0, (b - a) / 1000) };
}

function mode(samples: Sample[], start: number, sequential: boolean): ModeResult {
  const finish: Record<string, number> = {};
  for (const s of samples) finish[s.finish_reason ?? 'none'] = (finish[s.finish_reason ?? 'none'] ?? 0) + 1;
  const wallS = (Math.max(...samples.map((s) => s.end)) - start) / 1000;
  const tokens = sum(samples.map((s) => s.completion_tokens));
  const decodingS = unionLength(samples.map((s): [number, number] => [s.first, s.end])) / 1000;
  const phase = sum(samples.map((s) => Math.max(0, s.completion_tokens - 1))) / decodingS;
  const all = sequential ? { rate: phase, span_s: decodingS } : allDecoding(samples);
  return {
    requests: samples.length,
    prompt_tokens: samples.map((s) => s.prompt_tokens),
    completion_tokens: tokens,
    wall_s: wallS,
    decode_tokens_per_s: tokens / wallS,
    decode_phase_tokens_per_s: phase,
    all_decoding_tokens_per_s: all.rate,
    all_decoding_s: all.span_s,
    ttft_p50_s: percentile(
      samples.map((s) => s.ttft_ms / 1000),
      0.5,
    ),
    ttft_p95_s: percentile(
      samples.map((s) => s.ttft_ms / 1000),
      0.95,
    ),
    finish_reasons: finish,
    per_request: samples.map((s) => ({ ttft_s: s.ttft_ms / 1000, total_s: s.total_ms / 1000, completion_tokens: s.completion_tokens })),
  };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  const t0 = performance.now();
  const loadStart = loadavg();
  const phaseS: Record<string, number> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const ts = performance.now();
    const out = await fn();
    phaseS[name] = (performance.now() - ts) / 1000;
    log(`${name}: ${phaseS[name].toFixed(1)} s`);
    return out;
  };
  log(`machine: ${cpuModel()}, load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);

  const modelPath = o.model ?? ensureBenchModels([o.type], log)[o.type];
  const { LocalEngine, describeAdapter } = await import('../src/index.js');
  const { acquireNodeDevice, fileSource } = await import('../src/node.js');
  const ctx = await acquireNodeDevice({ robustness: o.robust });
  const adapter = describeAdapter(ctx.adapter);
  log(`adapter: ${adapter}`);
  const tl = performance.now();
  const src = await fileSource(modelPath);
  const engine = await LocalEngine.load(ctx, src, o.engineOptions as LocalEngineOptions);
  const loadS = (performance.now() - tl) / 1000;
  const cfg = engine.loaded.cfg;
  const tokenizer = engine.loaded.tokenizer;
  const encode: Encode = (text) => tokenizer.encode(text, { addBos: false, parseSpecial: false });
  log(`loaded ${basename(modelPath)} in ${loadS.toFixed(1)} s with ${JSON.stringify(o.engineOptions)}`);

  // Every request gets its own seeded text (distinct first words), so no request can hit a cache left by another.
  const usedFirst = new Set<string>();
  let seed = 1;
  const userMessage = (): ChatCompletionMessageParam[] => [{ role: 'user', content: seededText(seed++, o.userTokens, encode, usedFirst) }];

  const warmupS = await phase('warm-up', async () => {
    const ts = performance.now();
    await chat(engine, userMessage(), o.maxTokens);
    return (performance.now() - ts) / 1000;
  });

  // For each N, under the same machine load: (a) sequential, N new requests, each awaited before the next starts;
  // (b) concurrent, N other new requests of the same shape, all created at once and drained together. The pair runs
  // `repeats` times back to back (the machine's speed drifts by tens of percent over minutes); the row shown is the
  // repeat with the median all-decoding ratio, and every repeat's ratios are kept.
  const rows: ConcurrencyRow[] = [];
  await phase('sequential + concurrent', async () => {
    for (const n of o.concurrency) {
      const runs: Omit<ConcurrencyRow, 'repeats'>[] = [];
      for (let rep = 0; rep < o.repeats; rep++) {
        const seqStart = performance.now();
        const seqSamples: Sample[] = [];
        for (let i = 0; i < n; i++) seqSamples.push(await chat(engine, userMessage(), o.maxTokens));
        const seq = mode(seqSamples, seqStart, true);
        const msgs = Array.from({ length: n }, userMessage);
        const start = performance.now();
        const conc = mode(await Promise.all(msgs.map((m) => chat(engine, m, o.maxTokens))), start, false);
        const phaseRatio = conc.decode_phase_tokens_per_s / seq.decode_phase_tokens_per_s;
        runs.push({
          n,
          sequential: seq,
          concurrent: conc,
          ratio: conc.decode_tokens_per_s / seq.decode_tokens_per_s,
          decode_phase_ratio: phaseRatio,
          all_decoding_ratio: conc.all_decoding_tokens_per_s / seq.decode_phase_tokens_per_s,
        });
        log(
          `N=${n}: sequential ${seq.decode_tokens_per_s.toFixed(2)} tok/s, concurrent ${conc.decode_tokens_per_s.toFixed(2)} tok/s (${(
            conc.decode_tokens_per_s / seq.decode_tokens_per_s
          ).toFixed(
            2,
          )}×; decode phase ${seq.decode_phase_tokens_per_s.toFixed(2)} → ${conc.decode_phase_tokens_per_s.toFixed(2)}, ${phaseRatio.toFixed(2)}×; all decoding ${conc.all_decoding_tokens_per_s.toFixed(2)} over ${conc.all_decoding_s.toFixed(2)} s), TTFT p50/p95 ${conc.ttft_p50_s.toFixed(2)}/${conc.ttft_p95_s.toFixed(2)} s`,
        );
      }
      const byAll = [...runs].sort((a, b) => a.all_decoding_ratio - b.all_decoding_ratio);
      const mid = byAll[(byAll.length - 1) >> 1]!;
      rows.push({
        ...mid,
        repeats: runs.map((r) => ({ ratio: r.ratio, decode_phase_ratio: r.decode_phase_ratio, all_decoding_ratio: r.all_decoding_ratio })),
      });
    }
  });

  // Prefix cache: a cold request with a system prompt never seen before, then a warm one with the same system prompt
  // and a different user message, `samples` times; each cold system prompt is new text.
  const cold: PrefixSample[] = [];
  const warm: PrefixSample[] = [];
  await phase('prefix cache', async () => {
    for (let i = 0; i < o.samples; i++) {
      const system = seededText(seed++, o.systemTokens, encode, usedFirst);
      const systemTokens = encode(system).length;
      for (const into of [cold, warm]) {
        const messages: ChatCompletionMessageParam[] = [{ role: 'system', content: system }, ...userMessage()];
        const s = await chat(engine, messages, o.prefixMaxTokens);
        into.push({ system_tokens: systemTokens, prompt_tokens: s.prompt_tokens, cached_tokens: s.cached_tokens, ttft_s: s.ttft_ms / 1000 });
        log(
          `${into === cold ? 'cold' : 'warm'} ${i + 1}: TTFT ${(s.ttft_ms / 1000).toFixed(2)} s, ${s.prompt_tokens} prompt tokens, ${s.cached_tokens} cached`,
        );
      }
    }
  });
  const coldMed = median(cold.map((s) => s.ttft_s));
  const warmMed = median(warm.map((s) => s.ttft_s));

  const args = argv.map((a) => (/^[\w.,=/:-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  const run: ServingRun = {
    date: new Date().toISOString(),
    command: `npm run bench:serving${args ? ` -- ${args}` : ''}`,
    wall_s: (performance.now() - t0) / 1000,
    phase_s: phaseS,
    machine: {
      ...machineInfo(),
      load_average_start: loadStart,
      load_average_end: loadavg(),
      adapter,
    },
    model: {
      file: relative(REPO, modelPath),
      file_bytes: statSync(modelPath).size,
      type: o.model === null ? o.type : 'from --model',
      config: cfg,
      load_s: loadS,
    },
    engine_options: o.engineOptions,
    robustness: o.robust,
    settings: {
      concurrency: o.concurrency,
      repeats: o.repeats,
      max_tokens: o.maxTokens,
      user_tokens: o.userTokens,
      system_tokens: o.systemTokens,
      samples: o.samples,
      prefix_max_tokens: o.prefixMaxTokens,
    },
    warmup_s: warmupS,
    concurrency: rows,
    prefix: { cold, warm, cold_ttft_median_s: coldMed, warm_ttft_median_s: warmMed, ratio: coldMed / warmMed },
  };
  await engine.unload();
  await src.close?.();

  const md = renderMarkdown(run, o.model === null ? TYPE_MIX[o.type].note : null);
  process.stdout.write(md + '\n');
  if (o.json !== null) {
    writeFileSync(o.json, JSON.stringify(run, null, 2) + '\n');
    log(`wrote ${o.json}`);
  }
  if (o.write) {
    writeBenchmarksSection('serving', md);
    log('rewrote the serving section of BENCHMARKS.md');
  }
  log(`wall time ${run.wall_s.toFixed(0)} s`);
  return 0;
}

// ---- BENCHMARKS.md ----------------------------------------------------------------------------

const f2 = (x: number): string => (!Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ratio = (x: number): string => (!Number.isFinite(x) ? '–' : x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`);
const range = (xs: number[]): string => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? `${lo}` : `${lo}–${hi}`;
};

function renderMarkdown(r: ServingRun, mix: string | null): string {
  const L: string[] = [];
  const c = r.model.config;
  const s = r.settings;
  const m = r.machine;
  L.push(`## Serving: concurrent chats and the prefix cache through the public API (${r.date.slice(0, 10)})`, '');
  L.push(
    `Machine: ${m.cpu} (${m.cores} cores), ${m.memory_gib.toFixed(0)} GiB, no GPU: WebGPU on SwiftShader (Vulkan on the CPU) through Dawn (the \`webgpu\` package) in Node ${m.node}, robustness ${r.robustness ? 'on' : 'off'}; adapter ${m.adapter}. Load average ${m.load_average_start.map((x) => x.toFixed(2)).join(' / ')} at the start, ${m.load_average_end.map((x) => x.toFixed(2)).join(' / ')} at the end (the machine is shared). Commit ${m.git}.`,
    '',
    `Command: \`${r.command}\` (wall time ${r.wall_s.toFixed(0)} s: model load ${r.model.load_s.toFixed(1)} s, ${Object.entries(r.phase_s)
      .map(([k, v]) => `${k} ${v.toFixed(0)} s`)
      .join(', ')}).`,
    '',
    `Model: \`${r.model.file}\` (${(r.model.file_bytes / 1e6).toFixed(1)} MB${mix ? `, ${mix}` : ''}; seeded random weights from \`bench/models.ts\`): ${c.arch}, d=${c.dModel}, ${c.numHeads} heads / ${c.numKvHeads} KV heads, ${c.numLayers} layers, FF ${c.ffDim}, context ${c.contextLength}, vocabulary ${c.vocabSize}. Engine: \`LocalEngine.load(ctx, fileSource(path), ${JSON.stringify(r.engine_options)})\`; every request is \`engine.chat.completions.create({ messages, stream: true, temperature: 0, max_tokens })\`.`,
    '',
  );
  const promptTokens = r.concurrency.flatMap((x) => [...x.sequential.prompt_tokens, ...x.concurrent.prompt_tokens]);
  const finish: Record<string, number> = {};
  for (const x of r.concurrency)
    for (const mr of [x.sequential, x.concurrent]) for (const [k, v] of Object.entries(mr.finish_reasons)) finish[k] = (finish[k] ?? 0) + v;
  L.push(
    `### Concurrent chats vs the same requests one after another`,
    '',
    `Each request is a different chat (one user message of ${s.user_tokens} tokens of seeded English words, ${range(promptTokens)} prompt tokens after the chat template), max_tokens ${s.max_tokens}. Sequential: N requests, each awaited before the next starts (what WebLLM and transformers.js do). Concurrent, right after: N other requests of the same shape created at once and their streams drained together (no request repeats a prompt, so no cache can favour either mode). End-to-end tok/s = completion tokens (\`usage.completion_tokens\` of each last chunk) ÷ wall time from the first create() to the end of the last stream, prefill included (the prefill work is the same in both modes). Decode-phase tok/s = the tokens after each request's first ÷ the time at least one request was decoding (the union of its [first token, last chunk] intervals: the sum of the requests' decode times when sequential, one merged span when concurrent; the other requests' prefill runs inside that span). All-decoding tok/s = the content chunks (one token each on this model) that arrive while every one of the N requests is decoding — from the last request's first token to the first request's last chunk, when no prefill runs — ÷ that span, against the sequential decode phase; the span's length is in brackets. TTFT: create() → the first chunk with non-empty content, p50 / p95 over the N requests (linear interpolation). One warm-up request first (${r.warmup_s.toFixed(1)} s). Finish reasons: ${Object.entries(
      finish,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
    '',
    '| chats | completion tokens | decode-phase tok/s seq → conc | decode-phase ratio | all-decoding tok/s (span s) | all-decoding ratio | end-to-end tok/s seq → conc | end-to-end ratio | sequential TTFT p50 / p95 s | concurrent TTFT p50 / p95 s |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const x of r.concurrency)
    L.push(
      `| ${x.n} | ${x.sequential.completion_tokens} / ${x.concurrent.completion_tokens} | ${f2(x.sequential.decode_phase_tokens_per_s)} → ${f2(x.concurrent.decode_phase_tokens_per_s)} | ${ratio(x.decode_phase_ratio)} | ${f2(x.concurrent.all_decoding_tokens_per_s)} (${f2(x.concurrent.all_decoding_s)}) | ${ratio(x.all_decoding_ratio)} | ${f2(x.sequential.decode_tokens_per_s)} → ${f2(x.concurrent.decode_tokens_per_s)} | ${ratio(x.ratio)} | ${f2(x.sequential.ttft_p50_s)} / ${f2(x.sequential.ttft_p95_s)} | ${f2(x.concurrent.ttft_p50_s)} / ${f2(x.concurrent.ttft_p95_s)} |`,
    );
  L.push('', 'Completion tokens: sequential / concurrent.', '');
  const reps = r.settings.repeats ?? 1;
  if (reps > 1) {
    L.push(
      `Each N ran the sequential / concurrent pair ${reps} times back to back; a row above is the repeat with the median all-decoding ratio. Every repeat's ratios (end-to-end / decode-phase / all-decoding), in run order:`,
      '',
      '| chats | repeats: end-to-end / decode-phase / all-decoding ratio |',
      '|---:|---|',
    );
    for (const x of r.concurrency)
      L.push(`| ${x.n} | ${(x.repeats ?? []).map((q) => `${ratio(q.ratio)} / ${ratio(q.decode_phase_ratio)} / ${ratio(q.all_decoding_ratio)}`).join('; ')} |`);
    L.push('');
  }
  const p = r.prefix;
  const sysTokens = [...p.cold, ...p.warm].map((x) => x.system_tokens);
  L.push(
    `### Shared system prompt: time to first token, cold vs prefix hit`,
    '',
    `A system prompt of ${range(sysTokens)} tokens (seeded English words, counted with the model's tokenizer) and a user message of ${s.user_tokens} tokens, max_tokens ${s.prefix_max_tokens}. Cold: a system prompt no earlier request used (new text for every sample). Warm: the same system prompt as the request just before it (that cold one), with a different user message. ${s.samples} sample${s.samples === 1 ? '' : 's'} of each, alternating cold, warm; cached tokens are \`usage.prompt_tokens_details.cached_tokens\`.`,
    '',
    '| request | prompt tokens | cached tokens | TTFT median s | TTFT samples s |',
    '|---|---:|---:|---:|---:|',
    `| cold | ${range(p.cold.map((x) => x.prompt_tokens))} | ${range(p.cold.map((x) => x.cached_tokens))} | ${f2(p.cold_ttft_median_s)} | ${p.cold.map((x) => f2(x.ttft_s)).join(', ')} |`,
    `| warm (prefix hit) | ${range(p.warm.map((x) => x.prompt_tokens))} | ${range(p.warm.map((x) => x.cached_tokens))} | ${f2(p.warm_ttft_median_s)} | ${p.warm.map((x) => f2(x.ttft_s)).join(', ')} |`,
    '',
  );
  const at8 = r.concurrency.find((x) => x.n === 8);
  const allAt8 = (at8?.repeats ?? []).map((q) => q.all_decoding_ratio);
  const repsAt8 = allAt8.length > 1 ? ` (the median of ${allAt8.length} repeats; ${allAt8.filter((x) => x >= 3).length} of them ≥ 3×)` : '';
  L.push(
    `Issue 5's targets: aggregate decode at 8 concurrent chats ≥ 3× sequential${repsAt8} — ${at8 ? `decode phase ${ratio(at8.decode_phase_ratio)}, ${at8.decode_phase_ratio >= 3 ? 'met' : 'not met'}; while all 8 decode ${ratio(at8.all_decoding_ratio)}, ${at8.all_decoding_ratio >= 3 ? 'met' : 'not met'}; end to end with prefill ${ratio(at8.ratio)}, ${at8.ratio >= 3 ? 'met' : 'not met'}` : 'not measured (no N = 8 in this run)'}; a prefix-cache hit on a ~1,000-token system prompt cuts TTFT ≥ 5× — ${ratio(p.ratio)}${Math.min(...sysTokens) >= 900 ? `, ${p.ratio >= 5 ? 'met' : 'not met'}` : ` (system prompt shorter than 1,000 tokens in this run)`}.`,
    '',
  );
  return L.join('\n');
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);

// `npm run bench:cache`: the semantic cache (issue 6) — a hit's end-to-end time against generating the same answer on
// the bundled model, the vector index's lookup time (CPU scan and GPU scan) at 1k..100k entries, and embedding
// throughput per embedder. Markdown on stdout; `--write` replaces the section between the cache markers in BENCHMARKS.md.
// Flags: --samples 5 (hit/miss pairs)  --max-tokens 64  --sizes 1000,2000,4096,10000,100000  --lookups 15  --json FILE  --write

import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { cpuModel, gitDescribe, REPO, writeBenchmarksSection } from './report.js';
import type { ChatCompletionMessageParam } from '../src/index.js';
import { rng } from '../test/fixtures/random.js';

// src/ imports WGSL with Vite's `?raw`; the hook must be registered before src/ is imported (dynamically, below).
register('../bin/wgsl-hooks.mjs', import.meta.url);

const MODEL = join(REPO, 'demo', 'models', 'hearth-tiny.gguf');

const log = (s: string): void => {
  process.stderr.write(`bench:cache: ${s}\n`);
};

interface Options {
  samples: number;
  maxTokens: number;
  sizes: number[];
  lookups: number;
  json: string | null;
  write: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { samples: 5, maxTokens: 64, sizes: [1000, 2000, 4096, 10000, 100000], lookups: 15, json: null, write: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = (v: string): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${a} takes positive integers, not ${v}`);
      return n;
    };
    if (a === '--samples') o.samples = int(val());
    else if (a === '--max-tokens') o.maxTokens = int(val());
    else if (a === '--sizes') o.sizes = val().split(',').map(int);
    else if (a === '--lookups') o.lookups = int(val());
    else if (a === '--json') o.json = val();
    else if (a === '--write') o.write = true;
    else throw new Error(`unknown flag ${a}`);
  }
  return o;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** A fixed number of significant digits, without exponent notation. */
const fmt = (x: number, digits = 3): string => (x >= 10 ** digits ? Math.round(x).toString() : Number(x.toPrecision(digits)).toString());

// Generated support-desk queries: distinct content-word sequences, so the lexical embedder sees as many different
// vectors as there are queries (the shape of a real cache, where each entry is a different question).
const VERBS = [
  'reset',
  'change',
  'cancel',
  'track',
  'update',
  'delete',
  'export',
  'find',
  'renew',
  'upgrade',
  'share',
  'restore',
  'verify',
  'transfer',
  'download',
  'close',
];
const THINGS = [
  'password',
  'order',
  'account',
  'invoice',
  'subscription',
  'address',
  'email',
  'card',
  'plan',
  'backup',
  'report',
  'profile',
  'device',
  'license',
  'team',
  'refund',
  'booking',
  'ticket',
  'payment',
  'phone',
];
const WHERE = [
  'on the app',
  'on the website',
  'from my phone',
  'for my business',
  'for my family',
  'after moving',
  'before my trip',
  'without a login',
  'in europe',
  'at night',
];

function generatedQuery(i: number): string {
  const v = VERBS[i % VERBS.length]!;
  const t = THINGS[Math.floor(i / VERBS.length) % THINGS.length]!;
  const w = WHERE[Math.floor(i / (VERBS.length * THINGS.length)) % WHERE.length]!;
  const n = Math.floor(i / (VERBS.length * THINGS.length * WHERE.length));
  return `How do I ${v} my ${t} ${w}${n > 0 ? ` number ${n}` : ''}?`;
}

interface HitMiss {
  question: string;
  rephrased: string;
  miss_ms: number;
  hit_ms: number;
  completion_tokens: number;
  similarity: number;
}

interface LookupRow {
  vectors: string;
  dim: number;
  entries: number;
  cpu_ms: number;
  gpu_cpu_select_ms: number;
  gpu_gpu_select_ms: number;
  gpu_fallbacks: number;
}

interface EmbedRow {
  embedder: string;
  dim: number;
  texts: number;
  texts_per_s: number;
  note: string;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  const loadStart = loadavg();
  log(`machine: ${cpuModel()}, load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);
  if (!existsSync(MODEL)) execFileSync('npx', ['tsx', join(REPO, 'demo', 'make-model.ts')], { cwd: REPO, stdio: 'inherit' });

  const { LocalEngine, describeAdapter, SemanticCache, LexicalEmbedder, MemoryStore } = await import('../src/index.js');
  const { acquireNodeDevice, fileSource } = await import('../src/node.js');
  const { VectorIndex, GPU_SCAN_MIN_ROWS } = await import('../src/cache/index.js');
  const ctx = await acquireNodeDevice({ robustness: false });
  const adapter = describeAdapter(ctx.adapter);
  log(`adapter: ${adapter}`);

  // 1. A hit against a miss (generation + insert) through LocalEngine.chat.completions.create.
  const lexical = new LexicalEmbedder();
  const cache = await SemanticCache.create({ embedder: lexical, store: new MemoryStore(), gpu: ctx });
  const engine = await LocalEngine.load(ctx, await fileSource(MODEL), { maxContext: 512, semanticCache: cache });
  const system = 'You are the help desk of an online shop. Answer in two sentences.';
  const ask = async (q: string): Promise<{ ms: number; tokens: number; hit: boolean; similarity: number; text: string }> => {
    const messages: ChatCompletionMessageParam[] = [
      { role: 'system', content: system },
      { role: 'user', content: q },
    ];
    const ts = performance.now();
    const r = await engine.chat.completions.create({ messages, max_tokens: o.maxTokens, temperature: 0, cache: { semantic: true } });
    const ms = performance.now() - ts;
    const c = r.hearth?.cache;
    return {
      ms,
      tokens: r.usage.completion_tokens,
      hit: c?.hit === true,
      similarity: c?.hit ? (c.similarity ?? 0) : 0,
      text: r.choices[0]!.message.content ?? '',
    };
  };
  await ask('Warm-up: where do I see my shipping options?'); // compiles pipelines; not counted
  const pairs: HitMiss[] = [];
  for (let i = 0; i < o.samples; i++) {
    const question = generatedQuery(7 + 37 * i);
    // A trivial rephrasing: case, punctuation and filler words.
    const rephrased = `hi, ${question.toLowerCase().replace('?', '')} please!!`;
    const miss = await ask(question);
    const hit = await ask(rephrased);
    if (miss.hit || !hit.hit || hit.text !== miss.text) throw new Error(`expected a miss then a hit with the same text for "${question}" / "${rephrased}"`);
    pairs.push({ question, rephrased, miss_ms: miss.ms, hit_ms: hit.ms, completion_tokens: miss.tokens, similarity: hit.similarity });
    log(`miss ${miss.ms.toFixed(0)} ms (${miss.tokens} tokens), hit ${hit.ms.toFixed(2)} ms (similarity ${hit.similarity.toFixed(3)})`);
  }
  await engine.unload();
  const missMs = median(pairs.map((p) => p.miss_ms));
  const hitMs = median(pairs.map((p) => p.hit_ms));

  // 2. Embedding throughput. Lexical: batches of 100 generated queries. Model: the BERT fixtures, if src/model/bert.ts is there.
  const embedRows: EmbedRow[] = [];
  {
    const texts = Array.from({ length: 5000 }, (_, i) => generatedQuery(i * 13 + 5));
    await lexical.embed(texts.slice(0, 200));
    const ts = performance.now();
    for (let i = 0; i < texts.length; i += 100) await lexical.embed(texts.slice(i, i + 100));
    const s = (performance.now() - ts) / 1000;
    embedRows.push({
      embedder: lexical.id,
      dim: lexical.dim,
      texts: texts.length,
      texts_per_s: texts.length / s,
      note: 'generated support queries (8–12 words), batches of 100',
    });
    log(`lexical: ${(texts.length / s).toFixed(0)} texts/s`);
  }
  let bertNote = '';
  try {
    const { loadEmbeddingModel } = await import('../src/model/bert.js');
    const { bertFixturePath, BERT_FIXTURES } = await import('../test/fixtures/bert.js');
    for (const name of Object.keys(BERT_FIXTURES) as (keyof typeof BERT_FIXTURES)[]) {
      const spec = BERT_FIXTURES[name];
      const model = await loadEmbeddingModel(ctx, await fileSource(bertFixturePath(name)));
      const texts = Array.from({ length: 128 }, (_, i) => generatedQuery(i * 11 + 3));
      await model.embed(texts.slice(0, 8));
      const ts = performance.now();
      await model.embed(texts);
      const s = (performance.now() - ts) / 1000;
      const tokens = texts.reduce((n, t) => n + model.tokenize(t).length, 0);
      embedRows.push({
        embedder: `bert fixture ${name}`,
        dim: model.dim,
        texts: texts.length,
        texts_per_s: texts.length / s,
        note: `seeded random weights, d=${spec.dModel}, ${spec.numLayers} layers, FF ${spec.ffDim}; ${(tokens / texts.length).toFixed(1)} tokens/text; one embed() of ${texts.length} texts`,
      });
      log(`${name}: ${(texts.length / s).toFixed(1)} texts/s`);
      model.destroy();
    }
  } catch (e) {
    bertNote = `The BERT model embedder could not be measured: ${String(e).split('\n')[0]}`;
    log(bertNote);
  }

  // 3. Lookup: VectorIndex.search (CPU) and searchAsync on the GPU (candidates selected on the CPU or in the shader),
  // embedding excluded. Lexical vectors of generated queries (d=2048) and random unit vectors at d=384 (MiniLM's width).
  const lookupRows: LookupRow[] = [];
  const maxN = Math.max(...o.sizes);
  const r = rng(42);
  const sets: { name: string; dim: number; vectors: (n: number) => Promise<Float32Array> }[] = [
    {
      name: 'lexical (generated queries)',
      dim: lexical.dim,
      vectors: async (n) => {
        const out = new Float32Array(n * lexical.dim);
        for (let i = 0; i < n; i += 1000) {
          const vs = await lexical.embed(Array.from({ length: Math.min(1000, n - i) }, (_, j) => generatedQuery(i + j)));
          vs.forEach((v, j) => out.set(v, (i + j) * lexical.dim));
        }
        return out;
      },
    },
    {
      name: 'random unit',
      dim: 384,
      vectors: (n) => {
        const out = new Float32Array(n * 384);
        for (let i = 0; i < n; i++) {
          let ss = 0;
          for (let j = 0; j < 384; j++) {
            const x = r() * 2 - 1;
            out[i * 384 + j] = x;
            ss += x * x;
          }
          const inv = 1 / Math.sqrt(ss);
          for (let j = 0; j < 384; j++) out[i * 384 + j] = out[i * 384 + j]! * inv;
        }
        return Promise.resolve(out);
      },
    },
  ];
  for (const set of sets) {
    const ts = performance.now();
    const all = await set.vectors(maxN);
    log(`${set.name}: ${maxN} vectors in ${((performance.now() - ts) / 1000).toFixed(1)} s`);
    for (const n of o.sizes) {
      const d = set.dim;
      const mk = (select: 'cpu' | 'gpu'): InstanceType<typeof VectorIndex> => {
        const index = new VectorIndex(d, n, { gpu: ctx, gpuMinRows: 1, gpuSelect: select });
        for (let i = 0; i < n; i++) index.add(`e${i}`, all.subarray(i * d, (i + 1) * d));
        return index;
      };
      const queries = Array.from({ length: o.lookups }, (_, i) => all.slice(((i * 7919) % n) * d, (((i * 7919) % n) + 1) * d));
      // Perturb each query a little so it is a near-duplicate, not an exact one (as a rephrased question is).
      for (const q of queries) for (let j = 0; j < d; j += 17) q[j] = q[j]! + 0.01;
      const row: LookupRow = { vectors: set.name, dim: d, entries: n, cpu_ms: 0, gpu_cpu_select_ms: 0, gpu_gpu_select_ms: 0, gpu_fallbacks: 0 };
      for (const select of ['cpu', 'gpu'] as const) {
        const index = mk(select);
        const cpuSearch = index.search.bind(index);
        let fallbacks = 0;
        index.search = (q, k) => {
          fallbacks++;
          return cpuSearch(q, k);
        };
        await index.searchAsync(queries[0]!, 5); // makes the GPU copy, compiles the pipelines
        await index.searchAsync(queries[0]!, 5);
        fallbacks = 0;
        const gpuMs: number[] = [];
        const cpuMs: number[] = [];
        for (const q of queries) {
          let t = performance.now();
          const g = await index.searchAsync(q, 5);
          gpuMs.push(performance.now() - t);
          t = performance.now();
          const c = cpuSearch(q, 5);
          cpuMs.push(performance.now() - t);
          if (JSON.stringify(g) !== JSON.stringify(c)) throw new Error(`GPU and CPU results differ at n=${n}`);
        }
        if (select === 'cpu') {
          row.gpu_cpu_select_ms = median(gpuMs);
          row.cpu_ms = median(cpuMs);
        } else row.gpu_gpu_select_ms = median(gpuMs);
        row.gpu_fallbacks += fallbacks;
        index.destroy();
      }
      lookupRows.push(row);
      log(
        `${set.name} n=${n}: CPU ${row.cpu_ms.toFixed(2)} ms, GPU (CPU select) ${row.gpu_cpu_select_ms.toFixed(2)} ms, GPU (GPU select) ${row.gpu_gpu_select_ms.toFixed(2)} ms, fallbacks ${row.gpu_fallbacks}`,
      );
    }
  }

  const loadEnd = loadavg();
  const wallS = (performance.now() - t0) / 1000;
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpuModel()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    adapter,
    node: process.version,
    commit: gitDescribe(),
    load_average_start: loadStart,
    load_average_end: loadEnd,
    wall_s: wallS,
    gpu_scan_min_rows: GPU_SCAN_MIN_ROWS,
    hit_vs_miss: { max_tokens: o.maxTokens, miss_ms_median: missMs, hit_ms_median: hitMs, ratio: missMs / hitMs, pairs },
    embedding: embedRows,
    bert_note: bertNote,
    lookup: lookupRows,
  };
  if (o.json) writeFileSync(o.json, JSON.stringify(result, null, 2));
  const md = markdown(result, o);
  process.stdout.write(md);
  if (o.write) {
    writeBenchmarksSection('cache', md);
    log('BENCHMARKS.md updated');
  }
  return 0;
}

function markdown(
  res: {
    date: string;
    machine: string;
    adapter: string;
    node: string;
    commit: string;
    load_average_start: number[];
    load_average_end: number[];
    wall_s: number;
    gpu_scan_min_rows: number;
    hit_vs_miss: { max_tokens: number; miss_ms_median: number; hit_ms_median: number; ratio: number; pairs: HitMiss[] };
    embedding: EmbedRow[];
    bert_note: string;
    lookup: LookupRow[];
  },
  o: Options,
): string {
  const la = (x: number[]): string => x.map((v) => v.toFixed(2)).join(' / ');
  const h = res.hit_vs_miss;
  const toks = h.pairs.map((p) => p.completion_tokens);
  const L: string[] = [];
  L.push(`## Semantic cache: a hit against generating, lookup time, embedding throughput (${res.date})`, '');
  L.push(
    `Machine: ${res.machine}, no GPU: WebGPU on SwiftShader (Vulkan on the CPU) through Dawn (the \`webgpu\` package) in Node ${res.node}, robustness off; adapter ${res.adapter}. ` +
      `Load average ${la(res.load_average_start)} at the start, ${la(res.load_average_end)} at the end (the machine is shared). Commit ${res.commit}.`,
    '',
  );
  L.push(`Command: \`npm run bench:cache -- --write\` (wall time ${res.wall_s.toFixed(0)} s).`, '');
  L.push('### A hit against generating the same answer', '');
  L.push(
    `Model \`demo/models/hearth-tiny.gguf\` (\`npx tsx demo/make-model.ts\`) in a \`LocalEngine\` with a \`SemanticCache\` (LexicalEmbedder d=2048, MemoryStore, the engine's device passed as \`gpu\`). ` +
      `Each request is \`chat.completions.create({ messages: [system, user], max_tokens: ${h.max_tokens}, temperature: 0, cache: { semantic: true } })\`, timed from the call to the returned response. ` +
      `Miss: a question not asked before (prefill, decode of ${Math.min(...toks)}–${Math.max(...toks)} tokens, embed and insert). Hit: the same question right after in lower case with "hi," and "please!!" (the same answer text comes back with \`hearth.cache.hit\`). ` +
      `${h.pairs.length} pairs, one warm-up request first.`,
    '',
  );
  L.push('| | median ms | samples ms |', '|---|---:|---|');
  L.push(`| miss (generate + insert) | ${fmt(h.miss_ms_median)} | ${h.pairs.map((p) => fmt(p.miss_ms)).join(', ')} |`);
  L.push(`| hit | ${fmt(h.hit_ms_median)} | ${h.pairs.map((p) => fmt(p.hit_ms)).join(', ')} |`);
  L.push('');
  L.push(
    `A hit is **${fmt(h.ratio)}×** faster than generating (issue 6 wants ≥ 50×): ${h.ratio >= 50 ? 'met' : 'not met'}. Hit similarities ${fmt(Math.min(...h.pairs.map((p) => p.similarity)))}–${fmt(Math.max(...h.pairs.map((p) => p.similarity)))}.`,
    '',
  );
  L.push('### Lookup: the vector index at 1k–100k entries', '');
  L.push(
    `\`VectorIndex.search(q, 5)\` (CPU: a float64-accumulated dot product per row in JS) against \`searchAsync(q, 5)\` with the GPU scan forced (\`gpuMinRows: 1\`): shaders/cache-scan.wgsl scores every row in f32 (entry \`score_rows4\`, vec4 loads, on this adapter), then either all scores are read back and the CPU picks 13 candidates ("CPU select") or the shader's per-thread top-13 lists are read back ("GPU select"); the CPU re-scores the 13 exactly. ` +
      `Embedding excluded. Median of ${o.lookups} lookups; each query is a stored vector with every 17th component moved by 0.01 (a near-duplicate). Every GPU result was checked equal to the CPU's; "fallbacks" counts lookups where the GPU could not be sure and the CPU scan ran instead. ` +
      `Vectors: the LexicalEmbedder's of distinct generated support queries ("How do I <verb> my <thing> <where> [number n]?", d=2048), and random unit vectors at d=384 (all-MiniLM-L6-v2's width; no real model is bundled).`,
    '',
  );
  L.push(
    '| vectors | d | entries | CPU scan ms | GPU scan, CPU select ms | GPU scan, GPU select ms | GPU ÷ CPU | fallbacks |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const x of res.lookup) {
    const best = Math.min(x.gpu_cpu_select_ms, x.gpu_gpu_select_ms);
    L.push(
      `| ${x.vectors} | ${x.dim} | ${x.entries} | ${fmt(x.cpu_ms)} | ${fmt(x.gpu_cpu_select_ms)} | ${fmt(x.gpu_gpu_select_ms)} | ${fmt(best / x.cpu_ms)} | ${x.gpu_fallbacks} |`,
    );
  }
  L.push('');
  const gpuWins = res.lookup.filter((x) => Math.min(x.gpu_cpu_select_ms, x.gpu_gpu_select_ms) < x.cpu_ms);
  L.push(
    `The GPU scan beats the CPU scan here at ${gpuWins.length === 0 ? 'no size measured' : gpuWins.map((x) => `${x.entries} (d=${x.dim})`).join(', ')}. ` +
      `So the threshold (src/cache/index.ts \`defaultGpuMinRows\`) is Infinity on software adapters: with SwiftShader the "GPU" is these same 2 cores, and a one-row-per-invocation scan (vec4 loads, \`score_rows4\`) runs slower than the JS loop. ` +
      `On hardware GPUs it is GPU_SCAN_MIN_ROWS = ${res.gpu_scan_min_rows} rows, not measured (no GPU on this machine): there the CPU scan of 4096 rows costs the milliseconds above, against a submit + readback round trip of well under a millisecond on a discrete GPU. ` +
      `Reading all scores back and selecting on the CPU, against the shader's per-thread top-k: see the two GPU columns; searchAsync() defaults to CPU select.`,
    '',
  );
  L.push('### Embedding throughput', '');
  L.push('| embedder | d | texts | texts/s | what |', '|---|---:|---:|---:|---|');
  for (const e of res.embedding) L.push(`| ${e.embedder} | ${e.dim} | ${e.texts} | ${fmt(e.texts_per_s)} | ${e.note} |`);
  L.push('');
  if (res.bert_note) L.push(res.bert_note, '');
  return `${L.join('\n')}\n`;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

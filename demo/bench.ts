// The benchmark page: hearth's engine worker and (optionally) wllama on the same GGUF file, one after the other, with live tokens/s and a chart.
// window.hearthBench is what `hearth bench --browser` and `npm run bench` call headlessly; new result fields go in PageBenchResult / WllamaPageResult.

import { Wllama, type RawCompletionChunk, type RawCompletionParams, type ResultTimings } from '@wllama/wllama';
import wllamaWasmUrl from '@wllama/wllama/esm/wasm/wllama.wasm?url';
import wllamaPkg from '@wllama/wllama/package.json';
import { EngineError } from '../src/api/errors.js';
import { blobSource } from '../src/model/byte-source.js';
import { GGUFMeta, parseGGUF } from '../src/model/gguf.js';
import { Tokenizer } from '../src/model/tokenizer.js';
import { createWorkerEngine, type BenchResult, type Ceilings, type EngineInfo, type WorkerEngine } from '../src/worker/client.js';

export interface PageBenchOptions {
  /** Model URL (e.g. /models/llama-f32.gguf), or the file itself. */
  model: string | Blob;
  promptTokens: number;
  decodeTokens: number;
  /** KV cache length; default: the model's context length capped at 4096. */
  maxContext?: number;
  /** Per-kernel GPU times of one decode step and one prefill (timestamp queries). */
  profile?: boolean;
  /** Probe the adapter's streaming-read and matmul ceilings (once per page; cached). */
  ceilings?: boolean;
  /** Also run wllama (llama.cpp in WebAssembly) on the same file, after hearth. */
  wllama?: boolean;
  /** wllama's threads; default navigator.hardwareConcurrency (the cores). */
  wllamaThreads?: number;
  /** Let wllama offload layers to WebGPU (off by default: its WASM CPU path is what runs on SwiftShader machines). */
  wllamaWebGPU?: boolean;
}

export interface WllamaPageResult {
  backend: 'wllama';
  version: string;
  threads: number;
  multithread: boolean;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  prompt_tokens: number;
  decode_tokens: number;
  /** Fetch + wasm start + model load. */
  load_ms: number;
  /** llama-server's own timings of the measured completion. */
  timings: ResultTimings;
  /** Tokens wllama was kept from sampling (not complete UTF-8 on their own; see incompleteUtf8Tokens). */
  banned_tokens: number;
}

export interface PageBenchResult extends BenchResult {
  backend: 'chromium-worker';
  adapter: string;
  is_fallback: boolean;
  model: string;
  /** Fetch + parse + upload time; 0 when the model was already loaded by an earlier run. */
  load_ms: number;
  gpu_bytes: number;
  user_agent: string;
  cross_origin_isolated: boolean;
  ceilings?: Ceilings;
  wllama?: WllamaPageResult;
}

declare global {
  interface Window {
    hearthBench: (opts: PageBenchOptions) => Promise<PageBenchResult>;
  }
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`bench.html lacks #${id}`);
  return el as T;
};

const urlInput = $<HTMLInputElement>('url');
const fileInput = $<HTMLInputElement>('file');
const promptInput = $<HTMLInputElement>('prompt-tokens');
const decodeInput = $<HTMLInputElement>('decode-tokens');
const wllamaInput = $<HTMLInputElement>('with-wllama');
const threadsInput = $<HTMLInputElement>('wllama-threads');
const profileInput = $<HTMLInputElement>('with-profile');
const ceilingsInput = $<HTMLInputElement>('with-ceilings');
const runButton = $<HTMLButtonElement>('run');
const statusEl = $('status');
const adapterEl = $('adapter');
const errorEl = $('error');
const prefillEl = $('prefill');
const decodeEl = $('decode');
const wPrefillEl = $('w-prefill');
const wDecodeEl = $('w-decode');
const runsEl = $('runs');
const profileEl = $('profile');
const chart = $<HTMLCanvasElement>('chart');

type Backend = 'hearth' | 'wllama';

let engine: WorkerEngine | null = null;
/** What the worker holds now, so repeated runs on one model skip the load. */
let loaded: { key: string | Blob; maxContext: number | undefined; info: EngineInfo } | null = null;
let ceilings: Ceilings | null = null;

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

function modelName(m: string | Blob): string {
  if (typeof m === 'string') return m.split('/').pop() ?? m;
  return m instanceof File ? m.name : `blob (${m.size} bytes)`;
}

/**
 * wllama's prompt. Its glue reads `prompt` as a string only (a list of token ids fails with a JSON
 * type error), so it cannot be fed hearth's token ids; it gets a text of the same length in tokens
 * instead: " the" is one token in Llama-family vocabularies, and the tokenizer may add a BOS (and
 * SPM a leading space) — runWllama measures both on two short prompts. The cost of a forward pass
 * does not depend on which ids it sees; the count is checked against llama-server's own prompt_n.
 */
function wordPrompt(words: number): string {
  return ' the'.repeat(Math.max(1, words));
}

/** A ticking status line, so a slow software adapter visibly makes progress. */
function ticker(label: () => string): () => void {
  const t0 = performance.now();
  const tick = (): void => {
    statusEl.textContent = `${label()} · ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  };
  tick();
  const h = setInterval(tick, 200);
  return () => clearInterval(h);
}

// ---- the chart: running decode tokens/s against tokens decoded, one line per backend ----------

const COLORS: Record<Backend, string> = { hearth: '#d9480f', wllama: '#1c7ed6' };
const series: Record<Backend, { x: number; y: number }[]> = { hearth: [], wllama: [] };
let chartMaxX = 1;

function resetChart(decodeTokens: number): void {
  series.hearth = [];
  series.wllama = [];
  chartMaxX = Math.max(1, decodeTokens);
  drawChart();
}

function addPoint(b: Backend, x: number, y: number): void {
  if (!Number.isFinite(y)) return;
  series[b].push({ x, y });
  drawChart();
}

function drawChart(): void {
  const g = chart.getContext('2d');
  if (!g) return;
  const W = chart.width;
  const H = chart.height;
  const L = 48;
  const B = 28;
  const T = 12;
  const R = 12;
  g.clearRect(0, 0, W, H);
  const maxY = Math.max(1, ...series.hearth.map((p) => p.y), ...series.wllama.map((p) => p.y)) * 1.15;
  g.strokeStyle = '#999';
  g.fillStyle = '#555';
  g.font = '11px system-ui, sans-serif';
  g.beginPath();
  g.moveTo(L, T);
  g.lineTo(L, H - B);
  g.lineTo(W - R, H - B);
  g.stroke();
  const px = (x: number): number => L + ((W - L - R) * x) / chartMaxX;
  const py = (y: number): number => H - B - ((H - B - T) * y) / maxY;
  for (let i = 0; i <= 4; i++) {
    const y = (maxY * i) / 4;
    g.fillText(fmt(y), 4, py(y) + 4);
  }
  g.fillText('decode tok/s (running) vs tokens decoded', L + 8, T + 10);
  g.fillText(String(chartMaxX), W - R - 24, H - 8);
  g.fillText('0', L, H - 8);
  let legendX = L + 8;
  for (const b of ['hearth', 'wllama'] as const) {
    const pts = series[b];
    g.fillStyle = COLORS[b];
    g.fillText(b, legendX, T + 26);
    legendX += 60;
    if (pts.length === 0) continue;
    g.strokeStyle = COLORS[b];
    g.lineWidth = 2;
    g.beginPath();
    pts.forEach((p, i) => (i === 0 ? g.moveTo(px(p.x), py(p.y)) : g.lineTo(px(p.x), py(p.y))));
    g.stroke();
    g.lineWidth = 1;
  }
}

// ---- hearth ---------------------------------------------------------------------------------

async function runHearth(o: PageBenchOptions): Promise<PageBenchResult> {
  engine ??= createWorkerEngine();
  let loadMs = 0;
  if (!loaded || loaded.key !== o.model || loaded.maxContext !== o.maxContext) {
    loaded = null;
    let phase = 'hearth: loading';
    const stop = ticker(() => phase);
    try {
      const t0 = performance.now();
      const info = await engine.load(o.model, {
        ...(o.maxContext !== undefined ? { maxContext: o.maxContext } : {}),
        onProgress: (p) => {
          phase = `hearth: ${p.phase === 'download' ? 'downloading' : 'uploading weights'} ${mib(p.loadedBytes)}${p.totalBytes > 0 ? ` of ${mib(p.totalBytes)}` : ''}`;
        },
      });
      loadMs = performance.now() - t0;
      loaded = { key: o.model, maxContext: o.maxContext, info };
    } finally {
      stop();
    }
  }
  const info = loaded.info;
  adapterEl.textContent = `adapter: ${info.adapter}${info.isFallback ? ' — a software (CPU) adapter: expect low numbers' : ''}`;
  let live = '';
  const stop = ticker(() => `hearth: ${o.promptTokens} prompt + ${o.decodeTokens} decode tokens${live}`);
  let r: BenchResult;
  try {
    r = await engine.bench({
      promptTokens: o.promptTokens,
      decodeTokens: o.decodeTokens,
      ...(o.profile ? { profile: true } : {}),
      onProgress: (p) => {
        if (p.phase === 'prefill') prefillEl.textContent = fmt(p.tokensPerS);
        else {
          decodeEl.textContent = fmt(p.tokensPerS);
          live = ` · ${p.tokens} decoded`;
          addPoint('hearth', p.tokens, p.tokensPerS);
        }
      },
    });
  } finally {
    stop();
  }
  if (o.ceilings) {
    if (!ceilings) {
      const stopC = ticker(() => 'probing the adapter’s read and matmul ceilings');
      try {
        ceilings = await engine.ceilings();
      } finally {
        stopC();
      }
    }
  }
  prefillEl.textContent = fmt(r.prefill_tokens_per_s);
  decodeEl.textContent = fmt(r.decode_tokens_per_s);
  return {
    backend: 'chromium-worker',
    adapter: info.adapter,
    is_fallback: info.isFallback,
    model: info.model?.name || modelName(o.model),
    load_ms: loadMs,
    gpu_bytes: info.model?.gpuBytes ?? 0,
    user_agent: navigator.userAgent,
    cross_origin_isolated: self.crossOriginIsolated,
    ...(o.ceilings && ceilings ? { ceilings } : {}),
    ...r,
  };
}

// ---- wllama ---------------------------------------------------------------------------------

/**
 * Ids of the tokens whose bytes are not complete UTF-8 on their own (lone bytes 0x80-0xFF, pieces
 * of a character). wllama's JSON layer throws when generated text is invalid UTF-8, and a
 * random-weight model (like the demo's) emits such tokens in any order; wllama is kept from
 * sampling them with a logit bias. The benchmark models (bench/models.ts) have none.
 */
async function incompleteUtf8Tokens(blob: Blob): Promise<number[]> {
  const file = await parseGGUF(blobSource(blob));
  const tok = Tokenizer.fromGGUF(new GGUFMeta(file.metadata));
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const out: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.isSpecial(id)) continue;
    try {
      utf8.decode(tok.tokenBytes(id));
    } catch {
      out.push(id);
    }
  }
  return out;
}

/** The last error line of llama.cpp inside wllama: its exceptions reach JS only as a broken reply. */
let wllamaLastError = '';
const wllamaLogger = {
  debug: (): void => undefined,
  log: (): void => undefined,
  warn: (...a: unknown[]): void => console.warn('[wllama]', ...a),
  error: (...a: unknown[]): void => {
    wllamaLastError = a.map(String).join(' ');
    console.error('[wllama]', ...a);
  },
};

/** wllama's errors become EngineErrors, so the CLI reports them like hearth's. */
function wllamaError(e: unknown, what: string): EngineError {
  if (e instanceof EngineError) return e;
  const msg = `${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}${wllamaLastError ? ` (llama.cpp: ${wllamaLastError})` : ''}`;
  // Its JSON layer throws on invalid UTF-8 in the generated text.
  const hint = /utf-8|parse model output/i.test(msg) ? ' The model generated text that is not valid UTF-8.' : '';
  return new EngineError('GPU_ERROR', `wllama ${what} failed: ${msg}.${hint}`, { peer: 'wllama' });
}

async function modelBlob(m: string | Blob): Promise<Blob> {
  if (typeof m !== 'string') return m;
  const res = await fetch(m);
  if (!res.ok) throw new EngineError('BAD_REQUEST', `Could not fetch the model from ${m}: HTTP ${res.status}.`, { url: m, status: res.status });
  return res.blob();
}

/** One streamed completion; resolves with llama-server's timings. */
async function completion(w: Wllama, prompt: string, maxTokens: number, ban: number[], onToken?: (n: number) => void): Promise<ResultTimings> {
  let timings: ResultTimings | undefined;
  let n = 0;
  const params = {
    prompt,
    max_tokens: maxTokens,
    // llama-server's object form: token id (as a string) -> bias.
    ...(ban.length > 0 ? { logit_bias: Object.fromEntries(ban.map((id) => [String(id), -1000])) } : {}),
    temperature: 0,
    ignore_eos: true,
    cache_prompt: false,
    stream: true as const,
    onData: (c: RawCompletionChunk) => {
      if (c.timings) timings = c.timings;
      if (c.choices.length > 0) onToken?.(++n);
    },
  };
  await w.createCompletion(params as RawCompletionParams & { stream: true; onData: (c: RawCompletionChunk) => void });
  if (!timings) throw new EngineError('GPU_ERROR', 'wllama returned no timings for the completion.', { peer: 'wllama' });
  return timings;
}

async function runWllama(o: PageBenchOptions): Promise<WllamaPageResult> {
  const threads = o.wllamaThreads ?? Math.max(1, navigator.hardwareConcurrency || 1);
  let phase = 'wllama: loading';
  const stop = ticker(() => phase);
  wllamaLastError = '';
  const w = new Wllama({ default: wllamaWasmUrl }, { logger: wllamaLogger });
  try {
    const t0 = performance.now();
    let blob: Blob;
    try {
      blob = await modelBlob(o.model);
      await w.loadModel([blob], {
        n_ctx: Math.max(256, o.promptTokens + o.decodeTokens + 16),
        n_batch: Math.max(512, o.promptTokens),
        n_ubatch: Math.max(512, o.promptTokens),
        n_threads: threads,
        n_parallel: 1,
        ...(o.wllamaWebGPU ? {} : { n_gpu_layers: 0 }),
      });
    } catch (e) {
      throw wllamaError(e, 'load');
    }
    const loadMs = performance.now() - t0;
    const ban = await incompleteUtf8Tokens(blob);
    try {
      phase = 'wllama: warm-up';
      const w8 = (await completion(w, wordPrompt(8), 2, ban)).prompt_n;
      const w16 = (await completion(w, wordPrompt(16), 2, ban)).prompt_n;
      // Tokens the tokenizer adds around the words (BOS, SPM's leading space).
      const extra = w8 - 8;
      if (w16 - w8 !== 8 || extra < 0 || extra >= o.promptTokens)
        throw new EngineError('GPU_ERROR', `wllama's tokenizer does not give one token per " the" (8 words: ${w8} tokens, 16 words: ${w16}).`, {
          peer: 'wllama',
        });
      const prompt = wordPrompt(o.promptTokens - extra);
      phase = `wllama: ${o.promptTokens} prompt + ${o.decodeTokens} decode tokens`;
      let tFirst = 0;
      // One more token than hearth decodes: llama-server samples the first from the prefill batch
      // and times generation from there, so predicted_ms covers decodeTokens single-token steps.
      const t = await completion(w, prompt, o.decodeTokens + 1, ban, (n) => {
        const now = performance.now();
        if (n === 1) {
          tFirst = now;
          return;
        }
        if (n % 4 === 1 || n === o.decodeTokens + 1) {
          const rate = ((n - 1) / (now - tFirst)) * 1000;
          wDecodeEl.textContent = fmt(rate);
          addPoint('wllama', n - 1, rate);
        }
      });
      if (t.prompt_n !== o.promptTokens || t.cache_n !== 0)
        throw new EngineError('GPU_ERROR', `wllama evaluated ${t.prompt_n} prompt tokens (${t.cache_n} from its cache), not ${o.promptTokens}.`, {
          peer: 'wllama',
        });
      const decoded = Math.max(0, t.predicted_n - 1);
      const r: WllamaPageResult = {
        backend: 'wllama',
        version: wllamaPkg.version,
        threads: w.getNumThreads(),
        multithread: w.isMultithread(),
        prefill_tokens_per_s: t.prompt_n > 0 ? (t.prompt_n / t.prompt_ms) * 1000 : 0,
        decode_tokens_per_s: decoded > 0 && t.predicted_ms > 0 ? (decoded / t.predicted_ms) * 1000 : 0,
        prompt_tokens: t.prompt_n,
        decode_tokens: decoded,
        load_ms: loadMs,
        timings: t,
        banned_tokens: ban.length,
      };
      wPrefillEl.textContent = fmt(r.prefill_tokens_per_s);
      wDecodeEl.textContent = fmt(r.decode_tokens_per_s);
      return r;
    } catch (e) {
      throw wllamaError(e, 'completion');
    }
  } finally {
    stop();
    await w.exit().catch(() => undefined);
  }
}

// ---- the page's entry point -----------------------------------------------------------------

async function hearthBench(o: PageBenchOptions): Promise<PageBenchResult> {
  if (!(o.promptTokens >= 1) || !(o.decodeTokens >= 0))
    throw new EngineError('BAD_REQUEST', `promptTokens must be >= 1 and decodeTokens >= 0 (got ${o.promptTokens}, ${o.decodeTokens}).`);
  resetChart(o.decodeTokens);
  for (const el of [prefillEl, decodeEl, wPrefillEl, wDecodeEl]) el.textContent = '–';
  const r = await runHearth(o);
  if (o.wllama) r.wllama = await runWllama(o);
  showResult(r);
  return r;
}

window.hearthBench = hearthBench;

function cells(row: HTMLTableRowElement, values: string[]): void {
  for (const v of values) {
    const td = document.createElement('td');
    td.textContent = v;
    row.append(td);
  }
}

/** A row per backend; ratios to wllama and (decode) to the adapter's read ceiling when known. */
function showResult(r: PageBenchResult): void {
  const w = r.wllama;
  const ceilingPct =
    r.ceilings && r.ceilings.readGBps > 0 ? `${((100 * r.weight_bytes_per_token * r.decode_tokens_per_s) / (r.ceilings.readGBps * 1e9)).toFixed(1)}%` : '';
  const rows: string[][] = [
    [
      r.model,
      'hearth (worker)',
      String(r.prompt_tokens),
      String(r.decode_tokens),
      r.load_ms.toFixed(0),
      fmt(r.prefill_tokens_per_s),
      fmt(r.decode_tokens_per_s),
      w ? `${(r.prefill_tokens_per_s / w.prefill_tokens_per_s).toFixed(2)} / ${(r.decode_tokens_per_s / w.decode_tokens_per_s).toFixed(2)}` : '',
      ceilingPct,
    ],
  ];
  if (w)
    rows.push([
      r.model,
      `wllama ${w.version} (${w.threads} thr)`,
      String(w.prompt_tokens),
      String(w.decode_tokens),
      w.load_ms.toFixed(0),
      fmt(w.prefill_tokens_per_s),
      fmt(w.decode_tokens_per_s),
      '1',
      '',
    ]);
  for (const v of rows) {
    const row = document.createElement('tr');
    cells(row, v);
    runsEl.append(row);
  }
  profileEl.textContent = '';
  if (r.profile) {
    for (const [phase, list] of [
      ['decode step', r.profile.decode],
      [`prefill (${r.prompt_tokens} tokens)`, r.profile.prefill],
    ] as const) {
      const total = list.reduce((a, k) => a + k.ms, 0);
      const line = document.createElement('div');
      line.textContent = `${phase}: ${total.toFixed(2)} ms GPU — ${list.map((k) => `${k.kernel} ${k.ms.toFixed(2)}`).join(', ')}`;
      profileEl.append(line);
    }
  }
  statusEl.textContent = `done · ${r.model} · ${mib(r.gpu_bytes)} on the GPU${r.cross_origin_isolated ? '' : ' · page not cross-origin isolated: wllama runs single-threaded'}`;
}

function showError(e: unknown): void {
  errorEl.textContent = e instanceof EngineError ? `${e.code}: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

runButton.addEventListener('click', () => {
  const file = fileInput.files?.[0];
  const model: string | Blob = file ?? urlInput.value.trim();
  errorEl.textContent = '';
  runButton.disabled = true;
  const threads = Number(threadsInput.value);
  hearthBench({
    model,
    promptTokens: Number(promptInput.value),
    decodeTokens: Number(decodeInput.value),
    wllama: wllamaInput.checked,
    profile: profileInput.checked,
    ceilings: ceilingsInput.checked,
    ...(threads >= 1 ? { wllamaThreads: threads } : {}),
  })
    .catch((e: unknown) => {
      statusEl.textContent = 'failed';
      showError(e);
    })
    .finally(() => {
      runButton.disabled = false;
    });
});

fileInput.addEventListener('change', () => {
  if (fileInput.files?.[0]) urlInput.value = '';
});

threadsInput.value = String(navigator.hardwareConcurrency || 1);
drawChart();

// Offer the served model files; harmless when the listing is unavailable (a static build).
fetch('/models/index.json')
  .then((r) => (r.ok ? (r.json() as Promise<string[]>) : []))
  .then((names) => {
    const list = $('models');
    for (const n of names) {
      const opt = document.createElement('option');
      opt.value = `/models/${n}`;
      list.append(opt);
    }
  })
  .catch(() => undefined);

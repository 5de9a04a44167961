// The benchmark page: loads a model into the engine worker and measures prefill/decode tokens/s.
// window.hearthBench is what `hearth bench --browser` calls headlessly; new result fields go in PageBenchResult.

import { EngineError } from '../src/api/errors.js';
import { createWorkerEngine, type BenchResult, type EngineInfo, type WorkerEngine } from '../src/worker/client.js';

export interface PageBenchOptions {
  /** Model URL (e.g. /models/llama-f32.gguf), or the file itself. */
  model: string | Blob;
  promptTokens: number;
  decodeTokens: number;
  /** KV cache length; default: the model's context length capped at 4096. */
  maxContext?: number;
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
const runButton = $<HTMLButtonElement>('run');
const statusEl = $('status');
const adapterEl = $('adapter');
const errorEl = $('error');
const prefillEl = $('prefill');
const decodeEl = $('decode');
const runsEl = $('runs');

let engine: WorkerEngine | null = null;
/** What the worker holds now, so repeated runs on one model skip the load. */
let loaded: { key: string | Blob; maxContext: number | undefined; info: EngineInfo } | null = null;

const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

function modelName(m: string | Blob): string {
  if (typeof m === 'string') return m.split('/').pop() ?? m;
  return m instanceof File ? m.name : `blob (${m.size} bytes)`;
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

async function hearthBench(o: PageBenchOptions): Promise<PageBenchResult> {
  if (!(o.promptTokens >= 1) || !(o.decodeTokens >= 0))
    throw new EngineError('BAD_REQUEST', `promptTokens must be >= 1 and decodeTokens >= 0 (got ${o.promptTokens}, ${o.decodeTokens}).`);
  engine ??= createWorkerEngine();
  let loadMs = 0;
  if (!loaded || loaded.key !== o.model || loaded.maxContext !== o.maxContext) {
    loaded = null;
    let phase = 'loading';
    const stop = ticker(() => phase);
    try {
      const t0 = performance.now();
      const info = await engine.load(o.model, {
        ...(o.maxContext !== undefined ? { maxContext: o.maxContext } : {}),
        onProgress: (p) => {
          phase = `${p.phase === 'download' ? 'downloading' : 'uploading weights'} ${mib(p.loadedBytes)}${p.totalBytes > 0 ? ` of ${mib(p.totalBytes)}` : ''}`;
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
  const stop = ticker(() => `benchmarking ${o.promptTokens} prompt + ${o.decodeTokens} decode tokens`);
  let r: BenchResult;
  try {
    r = await engine.bench({ promptTokens: o.promptTokens, decodeTokens: o.decodeTokens });
  } finally {
    stop();
  }
  return {
    backend: 'chromium-worker',
    adapter: info.adapter,
    is_fallback: info.isFallback,
    model: info.model?.name || modelName(o.model),
    load_ms: loadMs,
    gpu_bytes: info.model?.gpuBytes ?? 0,
    user_agent: navigator.userAgent,
    ...r,
  };
}

window.hearthBench = hearthBench;

function showError(e: unknown): void {
  errorEl.textContent = e instanceof EngineError ? `${e.code}: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

runButton.addEventListener('click', () => {
  const file = fileInput.files?.[0];
  const model: string | Blob = file ?? urlInput.value.trim();
  errorEl.textContent = '';
  runButton.disabled = true;
  hearthBench({ model, promptTokens: Number(promptInput.value), decodeTokens: Number(decodeInput.value) })
    .then((r) => {
      prefillEl.textContent = fmt(r.prefill_tokens_per_s);
      decodeEl.textContent = fmt(r.decode_tokens_per_s);
      statusEl.textContent = `done · ${r.model} · ${mib(r.gpu_bytes)} on the GPU`;
      const row = document.createElement('tr');
      for (const v of [
        r.model,
        String(r.prompt_tokens),
        String(r.decode_tokens),
        r.load_ms.toFixed(0),
        fmt(r.prefill_tokens_per_s),
        fmt(r.decode_tokens_per_s),
      ]) {
        const td = document.createElement('td');
        td.textContent = v;
        row.append(td);
      }
      runsEl.append(row);
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

// The chat demo page: pick a GGUF model (URL or file), prompt it, stream the output from the worker.
// A later issue turns this into the PWA demo; new controls get an element in index.html and a handler here.

import { EngineError } from '../src/api/errors.js';
import { createWorkerEngine, type EngineInfo, type WorkerEngine } from '../src/worker/client.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}`);
  return el as T;
};

const urlInput = $<HTMLInputElement>('url');
const fileInput = $<HTMLInputElement>('file');
const loadButton = $<HTMLButtonElement>('load');
const modelStatus = $('model-status');
const adapterEl = $('adapter');
const promptInput = $<HTMLTextAreaElement>('prompt');
const maxTokensInput = $<HTMLInputElement>('max-tokens');
const temperatureInput = $<HTMLInputElement>('temperature');
const seedInput = $<HTMLInputElement>('seed');
const generateButton = $<HTMLButtonElement>('generate');
const stopButton = $<HTMLButtonElement>('stop');
const outputEl = $('output');
const statsEl = $('stats');
const errorEl = $('error');

type State = 'idle' | 'loading' | 'generating';

let engine: WorkerEngine | null = null;
let loadedKey: string | File | null = null;
let running: AbortController | null = null;

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Also mirrored on <body data-state> so the browser tests can wait on it. */
function setState(s: State): void {
  document.body.dataset.state = s;
  loadButton.disabled = s !== 'idle';
  generateButton.disabled = s !== 'idle';
  stopButton.disabled = s !== 'generating';
}

function showError(e: unknown): void {
  errorEl.textContent =
    e instanceof EngineError ? `${e.code}: ${e.message}` : e instanceof Error ? `Unexpected error (${e.name}): ${e.message}` : `Unexpected error: ${String(e)}`;
}

function describe(info: EngineInfo): void {
  adapterEl.textContent = `GPU: ${info.adapter}`;
  if (info.isFallback) {
    const warn = document.createElement('span');
    warn.className = 'warn';
    warn.textContent = ' — this is a software (CPU) adapter, so generation will be slow.';
    adapterEl.append(warn);
  }
  const m = info.model;
  modelStatus.textContent = m
    ? `${m.name} (${m.arch}, ${m.config.numLayers} layers, d=${m.config.dModel}, vocab ${m.config.vocabSize}) · ${mib(m.gpuBytes)} on the GPU · context ${m.maxContext}`
    : 'no model loaded';
}

function selectedSource(): string | File {
  const file = fileInput.files?.[0];
  if (file) return file;
  const url = urlInput.value.trim();
  if (url.length === 0) throw new EngineError('BAD_REQUEST', 'Enter a model URL or choose a .gguf file.');
  return url;
}

async function ensureLoaded(): Promise<WorkerEngine> {
  engine ??= createWorkerEngine();
  const src = selectedSource();
  if (loadedKey !== null && loadedKey === src) return engine;
  loadedKey = null;
  modelStatus.textContent = 'loading…';
  const t0 = performance.now();
  const info = await engine.load(src, {
    onProgress: (p) => {
      const what = p.phase === 'download' ? 'downloading' : 'uploading weights to the GPU';
      modelStatus.textContent = `${what}: ${mib(p.loadedBytes)}${p.totalBytes > 0 ? ` of ${mib(p.totalBytes)}` : ''}`;
    },
  });
  loadedKey = src;
  describe(info);
  modelStatus.textContent += ` · loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  return engine;
}

async function onLoad(): Promise<void> {
  errorEl.textContent = '';
  setState('loading');
  try {
    loadedKey = null;
    await ensureLoaded();
  } catch (e) {
    modelStatus.textContent = 'no model loaded';
    showError(e);
  } finally {
    setState('idle');
  }
}

async function onGenerate(): Promise<void> {
  errorEl.textContent = '';
  outputEl.textContent = '';
  statsEl.textContent = '';
  setState('loading');
  try {
    const eng = await ensureLoaded();
    setState('generating');
    running = new AbortController();
    let n = 0;
    let tFirst = 0;
    const t0 = performance.now();
    const seed = Number(seedInput.value);
    const r = await eng.generate(
      {
        prompt: promptInput.value,
        maxTokens: Number(maxTokensInput.value),
        temperature: Number(temperatureInput.value),
        ...(Number.isFinite(seed) && seedInput.value !== '' ? { seed } : {}),
      },
      {
        signal: running.signal,
        onTokens: (b) => {
          if (n === 0) tFirst = performance.now();
          n += b.tokens.length;
          outputEl.textContent += b.text;
          const dt = (performance.now() - tFirst) / 1000;
          statsEl.textContent = `${n} tokens · first after ${((tFirst - t0) / 1000).toFixed(2)} s${dt > 0 && n > 1 ? ` · ${((n - 1) / dt).toFixed(1)} tok/s` : ''}`;
        },
      },
    );
    outputEl.textContent = r.text;
    outputEl.dataset.tokens = JSON.stringify(r.tokens);
    statsEl.textContent =
      `${r.tokens.length} tokens (${r.finishReason}) · prompt ${r.promptTokens.length} tokens at ${r.timings.prefillTokensPerS.toFixed(1)} tok/s` +
      ` · decode ${r.timings.decodeTokensPerS.toFixed(1)} tok/s`;
  } catch (e) {
    showError(e);
  } finally {
    running = null;
    setState('idle');
  }
}

loadButton.addEventListener('click', () => void onLoad());
generateButton.addEventListener('click', () => void onGenerate());
stopButton.addEventListener('click', () => running?.abort());
promptInput.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !generateButton.disabled) void onGenerate();
});
fileInput.addEventListener('change', () => {
  if (fileInput.files?.[0]) urlInput.value = '';
});
urlInput.addEventListener('input', () => {
  if (urlInput.value !== '') fileInput.value = '';
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

setState('idle');

// The chat demo page (a PWA): pick a GGUF model (URL, file or drop), chat with it (the OpenAI-shaped
// chat.completions API, streamed, multi-turn) or complete raw text (generate()), all in the worker.
// URLs go through the offline model store; new controls get an element in index.html and a handler here.

import { EngineError } from '../src/api/errors.js';
import { deleteModel, fetchModel, listModels } from '../src/storage/model-store.js';
import type { SpeculativeOptions } from '../src/engine/scheduler.js';
import type { ChatCompletionMessageParam } from '../src/api/types.js';
import { createEngine, type EngineInfo, type WorkerBackedEngine } from '../src/worker/engine-client.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}`);
  return el as T;
};

const urlInput = $<HTMLInputElement>('url');
const fileInput = $<HTMLInputElement>('file');
const sha256Input = $<HTMLInputElement>('sha256');
const storeStatus = $('store-status');
const storedList = $('stored');
const loadButton = $<HTMLButtonElement>('load');
const modelStatus = $('model-status');
const adapterEl = $('adapter');
const promptInput = $<HTMLTextAreaElement>('prompt');
const maxTokensInput = $<HTMLInputElement>('max-tokens');
const temperatureInput = $<HTMLInputElement>('temperature');
const speculativeSelect = $<HTMLSelectElement>('speculative');
const seedInput = $<HTMLInputElement>('seed');
const generateButton = $<HTMLButtonElement>('generate');
const sendButton = $<HTMLButtonElement>('send');
const newChatButton = $<HTMLButtonElement>('new-chat');
const conversationEl = $('conversation');
const stopButton = $<HTMLButtonElement>('stop');
const outputEl = $('output');
const statsEl = $('stats');
const errorEl = $('error');

type State = 'idle' | 'loading' | 'generating';

let engine: WorkerBackedEngine | null = null;
/** The conversation so far (user and assistant turns); "New chat" clears it. */
const history: ChatCompletionMessageParam[] = [];
/** What is loaded: the File, or the URL with its expected digest. */
let loadedKey: string | File | null = null;
/** A file dropped on the page, used when the file input holds none. */
let droppedFile: File | null = null;
/** Stop's target: the load or generation in progress. */
let running: AbortController | null = null;

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Also mirrored on <body data-state> so the browser tests can wait on it. */
function setState(s: State): void {
  document.body.dataset.state = s;
  loadButton.disabled = s !== 'idle';
  generateButton.disabled = s !== 'idle';
  sendButton.disabled = s !== 'idle';
  newChatButton.disabled = s !== 'idle';
  stopButton.disabled = s === 'idle';
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
  const file = fileInput.files?.[0] ?? droppedFile;
  if (file) return file;
  const url = urlInput.value.trim();
  if (url.length === 0) throw new EngineError('BAD_REQUEST', 'Enter a model URL or choose a .gguf file.');
  return url;
}

async function showStored(): Promise<void> {
  const models = await listModels().catch(() => []);
  storedList.replaceChildren(
    ...models.map((m) => {
      const li = document.createElement('li');
      li.dataset.url = m.url;
      li.textContent = `stored offline: ${m.url} · ${mib(m.sizeBytes)} · sha256 ${m.sha256.slice(0, 12)}…`;
      const del = document.createElement('button');
      del.textContent = 'delete';
      del.addEventListener('click', () => void deleteModel(m.url).then(showStored));
      li.append(del);
      return li;
    }),
  );
}

async function ensureLoaded(signal: AbortSignal): Promise<WorkerBackedEngine> {
  engine ??= await createEngine();
  const src = selectedSource();
  const sha256 = sha256Input.value.trim();
  const key = typeof src === 'string' ? `${src}#${sha256}` : src;
  if (loadedKey !== null && loadedKey === key) return engine;
  loadedKey = null;
  modelStatus.textContent = 'loading…';
  storeStatus.textContent = '';
  const t0 = performance.now();
  let bytes: Blob = typeof src === 'string' ? new Blob() : src;
  if (typeof src === 'string') {
    let fromNetwork = false;
    bytes = await fetchModel(src, {
      signal,
      ...(sha256 !== '' ? { sha256 } : {}),
      onProgress: (loaded, total) => {
        fromNetwork ||= loaded < total;
        modelStatus.textContent = `downloading: ${mib(loaded)}${total > 0 ? ` of ${mib(total)} (${((100 * loaded) / total).toFixed(0)} %)` : ''}`;
      },
      // The model still loads; only the offline copy is missing.
      onStoreError: (e) => {
        storeStatus.textContent = `not stored for offline use: ${e.code}: ${e.message}`;
      },
    });
    if (storeStatus.textContent === '') storeStatus.textContent = fromNetwork ? 'downloaded and stored for offline use' : 'loaded from the offline store';
    void showStored();
  }
  let info: EngineInfo;
  try {
    info = await engine.load(bytes, {
      signal,
      onProgress: (p) => {
        const what = p.phase === 'download' ? 'downloading' : 'uploading weights to the GPU';
        modelStatus.textContent = `${what}: ${mib(p.loadedBytes)}${p.totalBytes > 0 ? ` of ${mib(p.totalBytes)}` : ''}`;
      },
    });
  } catch (e) {
    // A file the engine rejects is no use offline either.
    if (typeof src === 'string' && e instanceof EngineError && e.code === 'BAD_MODEL_FILE') await deleteModel(src).then(showStored, () => undefined);
    throw e;
  }
  loadedKey = key;
  describe(info);
  modelStatus.textContent += ` · loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  return engine;
}

/** Load (again) what the model fields name. */
function onLoad(): Promise<void> {
  loadedKey = null;
  return withModel(() => Promise.resolve());
}

/**
 * Run `body` with the model loaded: clears the last error and stats, lets Stop abort the load and
 * the run (`signal`), shows a failure as a readable message, and leaves the page idle.
 */
async function withModel(body: (eng: WorkerBackedEngine, signal: AbortSignal) => Promise<void>): Promise<void> {
  errorEl.textContent = '';
  statsEl.textContent = '';
  setState('loading');
  running = new AbortController();
  const { signal } = running;
  try {
    const eng = await ensureLoaded(signal);
    setState('generating');
    await body(eng, signal);
  } catch (e) {
    if (loadedKey === null) modelStatus.textContent = 'no model loaded';
    showError(e);
  } finally {
    running = null;
    setState('idle');
  }
}

/** The form's sampling settings: max tokens, temperature, seed (when given) and the speculative choice. */
function sampling(): { maxTokens: number; temperature: number; seed: number | null; speculative: SpeculativeOptions | null } {
  const seed = Number(seedInput.value);
  return {
    maxTokens: Number(maxTokensInput.value),
    temperature: Number(temperatureInput.value),
    seed: Number.isFinite(seed) && seedInput.value !== '' ? seed : null,
    speculative: speculativeSelect.value ? (JSON.parse(speculativeSelect.value) as SpeculativeOptions) : null,
  };
}

function onGenerate(): Promise<void> {
  outputEl.textContent = '';
  return withModel(async (eng, signal) => {
    let n = 0;
    let tFirst = 0;
    const t0 = performance.now();
    // Speculative decoding: the verifiers sample from softmax(logits / T), so top-k / top-p go off with it.
    const { maxTokens, temperature, seed, speculative } = sampling();
    const before = speculative ? (await eng.info()).model?.serving : undefined;
    const r = await eng.generate(
      {
        prompt: promptInput.value,
        maxTokens,
        temperature,
        ...(seed !== null ? { seed } : {}),
        ...(speculative ? { speculative, topK: 0, topP: 1 } : {}),
      },
      {
        signal,
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
    const after = before ? (await eng.info()).model?.serving : undefined;
    const spec =
      before && after && after.verifySteps > before.verifySteps
        ? ` · speculative: ${after.acceptedDraftTokens - before.acceptedDraftTokens} of ${after.draftedTokens - before.draftedTokens} drafted tokens accepted, ${(
            (after.acceptedDraftTokens - before.acceptedDraftTokens + after.verifySteps - before.verifySteps) /
            (after.verifySteps - before.verifySteps)
          ).toFixed(2)} tokens per pass`
        : '';
    statsEl.textContent =
      `${r.tokens.length} tokens (${r.finishReason}) · prompt ${r.promptTokens.length} tokens at ${r.timings.prefillTokensPerS.toFixed(1)} tok/s` +
      ` · decode ${r.timings.decodeTokensPerS.toFixed(1)} tok/s${spec}`;
  });
}

function bubble(role: 'user' | 'assistant', text: string): HTMLElement {
  const el = document.createElement('div');
  el.className = `msg ${role}`;
  el.textContent = text;
  conversationEl.append(el);
  return el;
}

/**
 * Send the prompt as the next user turn: the whole conversation goes to chat.completions.create
 * (the model's chat template renders it) and the reply streams into a new bubble. The earlier
 * turns' KV is reused, so only the new message is prefilled (the stats show the cached tokens).
 */
function onSend(): Promise<void> {
  const content = promptInput.value.trim();
  if (content === '') return Promise.resolve();
  return withModel(async (eng, signal) => {
    history.push({ role: 'user', content });
    bubble('user', content);
    promptInput.value = '';
    const reply = bubble('assistant', '');
    const { maxTokens, temperature, seed, speculative } = sampling();
    const t0 = performance.now();
    let tFirst = 0;
    let n = 0;
    let text = '';
    const stream = await eng.chat.completions.create({
      messages: history,
      stream: true,
      max_tokens: maxTokens,
      temperature,
      ...(seed !== null ? { seed } : {}),
      ...(speculative ? { speculative } : {}),
      signal,
    });
    for await (const chunk of stream) {
      const piece = chunk.choices[0]?.delta.content ?? '';
      if (piece !== '') {
        if (n === 0) tFirst = performance.now();
        n++;
        text += piece;
        reply.textContent = text;
      }
      const u = chunk.usage;
      const finish = chunk.choices[0]?.finish_reason;
      if (u && finish) {
        const decodeS = (performance.now() - tFirst) / 1000;
        const rate = u.completion_tokens > 1 && decodeS > 0 ? ` · ${((u.completion_tokens - 1) / decodeS).toFixed(1)} tok/s` : '';
        statsEl.textContent =
          `${u.completion_tokens} tokens (${finish}) · first after ${((tFirst - t0) / 1000).toFixed(2)} s${rate}` +
          ` · prompt ${u.prompt_tokens} tokens, ${u.prompt_tokens_details?.cached_tokens ?? 0} of them cached from earlier turns`;
      }
    }
    // What the user saw is the turn, also when it was stopped early.
    history.push({ role: 'assistant', content: text });
  });
}

function onNewChat(): void {
  history.length = 0;
  conversationEl.textContent = '';
  statsEl.textContent = '';
}

loadButton.addEventListener('click', () => void onLoad());
sendButton.addEventListener('click', () => void onSend());
newChatButton.addEventListener('click', onNewChat);
generateButton.addEventListener('click', () => void onGenerate());
stopButton.addEventListener('click', () => running?.abort());
promptInput.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' || generateButton.disabled) return;
  if (e.ctrlKey || e.metaKey) void onGenerate();
  else if (!e.shiftKey) {
    e.preventDefault();
    void onSend();
  }
});
fileInput.addEventListener('change', () => {
  droppedFile = null;
  if (fileInput.files?.[0]) urlInput.value = '';
});
urlInput.addEventListener('input', () => {
  if (urlInput.value !== '') {
    fileInput.value = '';
    droppedFile = null;
  }
});

// Drag and drop a .gguf anywhere on the page: it becomes the selected file and loads.
document.addEventListener('dragover', (e) => {
  if (!e.dataTransfer?.types.includes('Files')) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = 'copy';
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', (e) => {
  if (e.relatedTarget === null) document.body.classList.remove('dragging');
});
document.addEventListener('drop', (e) => {
  document.body.classList.remove('dragging');
  const file = e.dataTransfer?.files[0];
  if (!file) return;
  e.preventDefault();
  fileInput.value = '';
  droppedFile = file;
  urlInput.value = '';
  if (!loadButton.disabled) void onLoad();
});

// The service worker (demo/public/sw.js) caches the built app shell; the dev server's on-the-fly
// modules are not worth caching, so only a production build registers it.
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  navigator.serviceWorker
    .register('./sw.js', { scope: './' })
    .then(() => navigator.serviceWorker.ready)
    .then(() => {
      const mark = (): void => {
        if (navigator.serviceWorker.controller) document.body.dataset.sw = 'active';
      };
      mark();
      navigator.serviceWorker.addEventListener('controllerchange', mark);
    })
    .catch((e: unknown) => console.warn('hearth: service worker not registered:', e));
}
void showStored();

// Offer the served model files; harmless when the listing is unavailable (a static build, offline).
if (navigator.onLine)
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

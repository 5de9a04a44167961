// The module Web Worker that owns the GPU device and a LocalEngine over the loaded model: model-wide
// calls (WorkerApi) via comlink, generation requests on each client's request port (serve()).
// A new model-wide call adds a method to `api`; a new kind of request a RequestOp (wire.ts) and a
// branch of runRequest(); either then gets its method in client.ts or engine-client.ts.

import { expose, type ProxyMarked } from 'comlink';
import { EngineError } from '../api/errors.js';
import { acquireBrowserDevice, describeAdapter, type GpuContext } from '../gpu/device.js';
import { benchModel } from '../engine/bench.js';
import { probeCeilings, type Ceilings } from '../gpu/probes.js';
import { generate } from '../engine/generate.js';
import { LocalEngine } from '../engine/local-engine.js';
import { blobSource, bufferSource, type ByteSource } from '../model/byte-source.js';
import { loadModel, type LoadedModel } from '../model/model.js';
import {
  installWireHandlers,
  type BenchOptions,
  type BenchResult,
  toWireError,
  type EngineInfo,
  type FromWorker,
  type GenerateResult,
  type LoadProgressEvent,
  type ModelInfo,
  type ModelSource,
  type RequestOp,
  type TokenBatch,
  type ToWorker,
  type WireChatParams,
  type WireCompletionParams,
  type WireGenerateRequest,
  type WorkerCacheOptions,
  type WorkerLoadOptions,
} from './wire.js';
import { LexicalEmbedder } from '../cache/lexical.js';
import { SemanticCache } from '../cache/semantic-cache.js';
import { IdbStore } from '../cache/store-idb.js';

installWireHandlers();

/** A callback living on the main thread; calls are fire-and-forget messages. */
export type RemoteCallback<T> = ((v: T) => unknown) & ProxyMarked;

/** Benchmark progress: after the prefill, then every few decoded tokens, with the running rate. */
export interface BenchProgressEvent {
  phase: 'prefill' | 'decode';
  /** Tokens done in this phase. */
  tokens: number;
  tokensPerS: number;
}

/** bench()'s options as plain data (progress goes through the callback argument). */
export type WireBenchOptions = Omit<BenchOptions, 'onProgress'>;

export type { Ceilings };

/** Streamed tokens are flushed at most this often, or when this many are waiting. */
const FLUSH_MS = 40;
const FLUSH_TOKENS = 16;
/** Streamed completion chunks likewise: a batch goes FLUSH_MS after its first chunk, or at this size. */
const FLUSH_CHUNKS = 16;

let ctx: GpuContext | null = null;
/** The OpenAI-shaped engine over the loaded model; generate() and bench() use its model directly. */
let engine: LocalEngine | null = null;
/**
 * Model-wide operations (load, unload, bench, probes) run one at a time, each after the requests in
 * flight have ended; generation requests run concurrently (the model's Scheduler batches them),
 * each after the model-wide operations queued before it. Cancellation does not queue.
 */
let queue: Promise<unknown> = Promise.resolve();
/** Loads that the page may abort, by the id its load() call passed. */
const loads = new Map<number, AbortController>();
/** Requests running or queued, by `<port>:<id>` (each client numbers its own requests). */
const running = new Map<string, AbortController>();
const inFlight = new Set<Promise<unknown>>();

/** Every error leaving the worker is an EngineError; anything else is a bug or a browser GPU failure. */
function asEngineError(e: unknown): EngineError {
  if (e instanceof EngineError) return e;
  const name = e instanceof Error ? e.name : typeof e;
  const err = new EngineError('GPU_ERROR', `Unexpected error in the engine worker (${name}): ${e instanceof Error ? e.message : String(e)}`, { name });
  if (e instanceof Error && e.stack !== undefined) err.stack = e.stack;
  return err;
}

/**
 * A model-wide operation: after everything queued before it and after the requests in flight end
 * (`abortRequests`: aborted first, for load and unload, which replace or free the model).
 */
function serial<T>(fn: () => Promise<T>, opts: { abortRequests?: boolean } = {}): Promise<T> {
  const run = async (): Promise<T> => {
    if (opts.abortRequests) for (const ac of running.values()) ac.abort();
    await Promise.allSettled([...inFlight]);
    return fn();
  };
  const p = queue.then(run, run).catch((e: unknown) => {
    throw asEngineError(e);
  });
  queue = p.catch(() => undefined);
  return p;
}

async function device(): Promise<GpuContext> {
  if (ctx && !ctx.lost) return ctx;
  if (ctx?.lost) {
    // Everything on the lost device is gone; a fresh device needs a fresh model load.
    engine = null;
    ctx = null;
  }
  ctx = await acquireBrowserDevice();
  return ctx;
}

function needEngine(): LocalEngine {
  if (!engine) throw new EngineError('NOT_LOADED', 'No model is loaded in the worker. Call load() with a GGUF file or URL first.');
  return engine;
}

function needModel(): LoadedModel {
  return needEngine().loaded;
}

/** Notify without waiting for the main thread, and never let a failing listener break the worker. */
function notify<T>(cb: RemoteCallback<T> | undefined, v: T): void {
  if (!cb) return;
  try {
    void Promise.resolve(cb(v)).catch(() => undefined);
  } catch {
    /* the page's listener threw; generation goes on */
  }
}

async function fetchBlob(url: string, signal: AbortSignal, onProgress?: RemoteCallback<LoadProgressEvent>): Promise<Blob> {
  const aborted = (loadedBytes: number): EngineError =>
    new EngineError('ABORTED', `Loading ${url} was aborted after ${loadedBytes} bytes had been downloaded.`, { url, loadedBytes });
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal.aborted) throw aborted(0);
    throw new EngineError(
      'BAD_REQUEST',
      `Could not fetch the model from ${url}: ${e instanceof Error ? e.message : String(e)}. Check the URL and that the server allows it (CORS).`,
      {
        url,
      },
    );
  }
  if (!res.ok)
    throw new EngineError('BAD_REQUEST', `Could not fetch the model from ${url}: HTTP ${res.status} ${res.statusText}. Check the URL.`, {
      url,
      status: res.status,
    });
  const totalBytes = Number(res.headers.get('Content-Length') ?? 0) || 0;
  if (!res.body) return res.blob();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loadedBytes = 0;
  let last = 0;
  const reader = res.body.getReader();
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array<ArrayBuffer>>;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (signal.aborted) throw aborted(loadedBytes);
      throw e;
    }
    const { done, value } = chunk;
    if (done) break;
    parts.push(value);
    loadedBytes += value.byteLength;
    const t = performance.now();
    if (t - last > 100) {
      last = t;
      notify(onProgress, { phase: 'download', loadedBytes, totalBytes });
    }
  }
  notify(onProgress, { phase: 'download', loadedBytes, totalBytes: totalBytes || loadedBytes });
  return new Blob(parts);
}

function modelInfo(m: LoadedModel): ModelInfo {
  const weightBytes = m.weights.gpuBytes;
  const runtimeBytes = m.runner.runtimeBytes;
  return {
    name: m.cfg.name,
    arch: m.cfg.arch,
    config: { ...m.cfg },
    gpuBytes: weightBytes + runtimeBytes,
    weightBytes,
    runtimeBytes,
    fileBytes: m.weights.fileBytes,
    maxContext: m.runner.opts.maxContext,
    hasChatTemplate: m.chatTemplate !== null,
    serving: m.scheduler.stats(),
  };
}

function engineInfo(c: GpuContext): EngineInfo {
  return {
    adapter: describeAdapter(c.adapter),
    adapterInfo: { ...c.adapter },
    isFallback: c.adapter.isFallback,
    features: { ...c.features },
    maxBufferSizeBytes: c.limits.maxBufferSize,
    maxStorageBufferBindingSizeBytes: c.limits.maxStorageBufferBindingSize,
    model: engine ? modelInfo(engine.loaded) : null,
  };
}

/** Only inside serial(): no request is in flight then, so the engine's unload() runs at once. */
async function unloadNow(): Promise<void> {
  const e = engine;
  engine = null;
  await e?.unload();
}

/** Streamed items to the page (one message each call), in order, ahead of the request's result. */
type SendItems = (items: unknown[]) => void;

/**
 * Pushes a request's chunks to the page in batches, at most one batch per FLUSH_MS (a chunk after a
 * quiet spell goes at once) or when FLUSH_CHUNKS are waiting: slow decoding streams token by token,
 * fast decoding in batches. The opening batch (a chat stream's role chunk, sent before the prefill)
 * does not start the clock, so the first token is never held back.
 */
class ChunkPusher<C> {
  private batch: C[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastFlushMs = -Infinity;
  private opened = false;

  constructor(private readonly send: SendItems) {}

  push(chunk: C): void {
    this.batch.push(chunk);
    const waitMs = this.lastFlushMs + FLUSH_MS - performance.now();
    if (waitMs <= 0 || this.batch.length >= FLUSH_CHUNKS) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), waitMs);
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.batch.length === 0) return;
    const b = this.batch;
    this.batch = [];
    if (this.opened) this.lastFlushMs = performance.now();
    this.opened = true;
    this.send(b);
  }
}

/** Run an OpenAI-shaped stream to its end, pushing its chunks to the page; the request's result is null. */
async function pushStream<C>(stream: AsyncIterable<C>, send: SendItems): Promise<null> {
  const pusher = new ChunkPusher<C>(send);
  try {
    for await (const chunk of stream) pusher.push(chunk);
  } finally {
    // What is left goes now; the result follows on the same port, so it cannot overtake it.
    pusher.flush();
  }
  return null;
}

/** A request by key: its own AbortController (an abort message fires it); runs beside other requests, after queued model-wide operations. */
function request<T>(key: string, aborted: boolean, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  if (aborted) ac.abort();
  running.set(key, ac);
  const run = (): Promise<T> => fn(ac.signal);
  const p = queue
    .then(run, run)
    .catch((e: unknown) => {
      throw asEngineError(e);
    })
    .finally(() => {
      if (running.get(key) === ac) running.delete(key);
    });
  const settled = p.catch(() => undefined);
  inFlight.add(settled);
  void settled.then(() => inFlight.delete(settled));
  return p;
}

const api = {
  /** Load a GGUF model (replacing any loaded one) and describe it. */
  load(source: ModelSource, opts: WorkerLoadOptions = {}, onProgress?: RemoteCallback<LoadProgressEvent>, loadId?: number): Promise<EngineInfo> {
    const ac = new AbortController();
    if (loadId !== undefined) loads.set(loadId, ac);
    const signal = ac.signal;
    const p = serial(
      async () => {
        if (signal.aborted) throw new EngineError('ABORTED', 'Loading the model was aborted before it started.');
        const c = await device();
        // Free the old weights first: two models may not fit side by side.
        await unloadNow();
        const open = async (s: ModelSource): Promise<ByteSource> => {
          if (typeof s === 'string') return blobSource(await fetchBlob(s, signal, onProgress));
          if (s instanceof ArrayBuffer) return bufferSource(s);
          if (s instanceof Blob) return blobSource(s);
          throw new EngineError('BAD_REQUEST', 'load() takes a URL string, an ArrayBuffer or a Blob/File (and so does its `draft` option).');
        };
        const src = await open(source);
        const draft = opts.draft !== undefined ? await open(opts.draft) : null;
        let lastPct = -1;
        const model = await loadModel(c, src, {
          ...pickDefined(opts, ['maxContext', 'maxBatch', 'maxSeqs', 'blockSize', 'kvCacheTokens']),
          ...(draft ? { draft } : {}),
          signal,
          onProgress: (loadedBytes, totalBytes) => {
            const pct = Math.floor((100 * loadedBytes) / Math.max(1, totalBytes));
            if (pct === lastPct) return;
            lastPct = pct;
            notify(onProgress, { phase: 'upload', loadedBytes, totalBytes });
          },
        });
        const cacheOpts = opts.semanticCache === true ? {} : opts.semanticCache || null;
        let semanticCache: SemanticCache | undefined;
        try {
          if (cacheOpts) semanticCache = await openSemanticCache(cacheOpts);
        } catch (e) {
          model.destroy();
          throw e;
        }
        engine = new LocalEngine(model, {
          ...(opts.modelName !== undefined ? { modelName: opts.modelName } : {}),
          ...(opts.speculative ? { speculative: opts.speculative } : {}),
          ...(semanticCache ? { semanticCache, semanticCacheByDefault: cacheOpts?.byDefault ?? false } : {}),
        });
        return engineInfo(c);
      },
      { abortRequests: true },
    );
    if (loadId !== undefined) void p.finally(() => loads.delete(loadId)).catch(() => undefined);
    return p;
  },

  /** Abort the load() that passed this id: it stops (ABORTED) while downloading or between weight chunks. */
  abortLoad(loadId: number): void {
    loads.get(loadId)?.abort();
  },

  /**
   * Serve generation requests on this port (wire.ts RequestChannel is the page's end): OpenAI-shaped
   * chat and completions, and generate(), each streamed or not, and their aborts.
   */
  connect(port: MessagePort): void {
    serve(port);
  },

  /**
   * Prefill and decode throughput of the loaded model (engine/bench.ts, as in Node); with
   * `profile`, per-kernel GPU times too. `onProgress` gets the running rates while it runs.
   */
  bench(opts: WireBenchOptions, onProgress?: RemoteCallback<BenchProgressEvent>): Promise<BenchResult> {
    return serial(() =>
      benchModel(needModel(), {
        promptTokens: opts.promptTokens,
        decodeTokens: opts.decodeTokens,
        ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
        ...(onProgress ? { onProgress: (phase, tokens, tokensPerS) => notify(onProgress, { phase, tokens, tokensPerS }) } : {}),
      }),
    );
  },

  /** The adapter's streaming-read and matmul ceilings from WGSL probes (gpu/probes.ts, as in Node). */
  ceilings(): Promise<Ceilings> {
    return serial(async () => probeCeilings(await device()));
  },

  /** Free the model's GPU memory; the device stays. */
  unload(): Promise<void> {
    return serial(unloadNow, { abortRequests: true });
  },

  /** Adapter, device limits and the loaded model (acquires the device if needed). */
  info(): Promise<EngineInfo> {
    // Answer at once while a request runs; only acquiring the device has to wait its turn.
    if (ctx && !ctx.lost) return Promise.resolve(engineInfo(ctx));
    return serial(async () => engineInfo(await device()));
  },
};

export type WorkerApi = typeof api;

let ports = 0;

/** Answer one client's requests on its port: items while a request streams, then its done or error. */
function serve(port: MessagePort): void {
  const tag = ++ports;
  const post = (m: FromWorker): void => port.postMessage(m);
  port.onmessage = (e: MessageEvent<ToWorker>) => {
    const m = e.data;
    const key = `${tag}:${m.id}`;
    if (m.t === 'abort') {
      running.get(key)?.abort();
      return;
    }
    const { id } = m;
    const send: SendItems | undefined = m.stream ? (items) => post({ t: 'items', id, items }) : undefined;
    request(key, m.aborted, (signal) => runRequest(m.op, m.params, signal, send)).then(
      (value) => {
        try {
          post({ t: 'done', id, value });
        } catch (err) {
          post({ t: 'error', id, error: toWireError(asEngineError(err)) });
        }
      },
      (err: unknown) => post({ t: 'error', id, error: toWireError(err) }),
    );
  };
}

/**
 * One request. Streamed (`send` given): an OpenAI stream's chunks, or generate()'s token batches,
 * go to the page as they come and the result is null for the OpenAI calls (the chunks say it all).
 */
async function runRequest(op: RequestOp, params: unknown, signal: AbortSignal, send: SendItems | undefined): Promise<unknown> {
  const e = needEngine();
  if (op === 'chat') {
    const p = params as WireChatParams;
    if (!send) return e.chat.completions.create({ ...p, stream: false, signal });
    return pushStream(await e.chat.completions.create({ ...p, stream: true, signal }), send);
  }
  if (op === 'completion') {
    const p = params as WireCompletionParams;
    if (!send) return e.completions.create({ ...p, stream: false, signal });
    return pushStream(await e.completions.create({ ...p, stream: true, signal }), send);
  }
  return generateRequest(e, params as WireGenerateRequest, signal, send);
}

/** generate() for the demo pages: tokens go in batches, the first at once (time to first token), later ones at most one batch per FLUSH_MS. */
async function generateRequest(e: LocalEngine, req: WireGenerateRequest, signal: AbortSignal, send: SendItems | undefined): Promise<GenerateResult> {
  // The engine's speculative default applies here as in its OpenAI-shaped calls.
  const speculative = req.speculative ?? e.speculative;
  let batch: TokenBatch = { tokens: [], text: '' };
  let lastFlush = -Infinity;
  const flush = (): void => {
    if (!send || (batch.tokens.length === 0 && batch.text.length === 0)) return;
    send([batch]);
    batch = { tokens: [], text: '' };
    lastFlush = performance.now();
  };
  const r = await generate(e.loaded, {
    ...req,
    ...(speculative ? { speculative } : {}),
    signal,
    ...(send
      ? {
          onToken: (token: number, text: string) => {
            batch.tokens.push(token);
            batch.text += text;
            if (batch.tokens.length >= FLUSH_TOKENS || performance.now() - lastFlush >= FLUSH_MS) flush();
          },
        }
      : {}),
  });
  flush();
  return r;
}

expose(api);

/** The named options that are set (exactOptionalPropertyTypes: absent, never undefined). */
function pickDefined<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** The lexical-embedder semantic cache over this origin's IndexedDB (a full quota degrades it to memory, reported once). */
async function openSemanticCache(o: WorkerCacheOptions): Promise<SemanticCache> {
  const store = IdbStore.open({ dbName: o.dbName ?? 'hearth-semantic-cache' });
  return SemanticCache.create({
    embedder: new LexicalEmbedder(),
    store,
    ...(o.threshold !== undefined ? { threshold: o.threshold } : {}),
    ...(o.ttlMs !== undefined ? { ttlMs: o.ttlMs } : {}),
    ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}),
  });
}

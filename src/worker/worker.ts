// The module Web Worker that owns the GPU device and the loaded model; exposes WorkerApi via comlink.
// A new message adds a method to `api` (plain-data arguments, types in wire.ts) and to client.ts.

import { expose, type ProxyMarked } from 'comlink';
import { EngineError } from '../api/errors.js';
import { acquireBrowserDevice, describeAdapter, type GpuContext } from '../gpu/device.js';
import { benchModel } from '../engine/bench.js';
import { probeCeilings, type Ceilings } from '../gpu/probes.js';
import { generate } from '../engine/generate.js';
import { blobSource, bufferSource, type ByteSource } from '../model/byte-source.js';
import { loadModel, type LoadedModel } from '../model/model.js';
import {
  installWireHandlers,
  type BenchOptions,
  type BenchResult,
  type EngineInfo,
  type GenerateResult,
  type LoadProgressEvent,
  type ModelInfo,
  type ModelSource,
  type TokenBatch,
  type WireGenerateRequest,
  type WorkerLoadOptions,
} from './wire.js';

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

let ctx: GpuContext | null = null;
let model: LoadedModel | null = null;
/** Requests run one at a time on the single model; cancellation does not queue. */
let queue: Promise<unknown> = Promise.resolve();
const running = new Map<number, AbortController>();

/** Every error leaving the worker is an EngineError; anything else is a bug or a browser GPU failure. */
function asEngineError(e: unknown): EngineError {
  if (e instanceof EngineError) return e;
  const name = e instanceof Error ? e.name : typeof e;
  const err = new EngineError('GPU_ERROR', `Unexpected error in the engine worker (${name}): ${e instanceof Error ? e.message : String(e)}`, { name });
  if (e instanceof Error && e.stack !== undefined) err.stack = e.stack;
  return err;
}

function serial<T>(fn: () => Promise<T>): Promise<T> {
  const p = queue.then(fn, fn).catch((e: unknown) => {
    throw asEngineError(e);
  });
  queue = p.catch(() => undefined);
  return p;
}

async function device(): Promise<GpuContext> {
  if (ctx && !ctx.lost) return ctx;
  if (ctx?.lost) {
    // Everything on the lost device is gone; a fresh device needs a fresh model load.
    model = null;
    ctx = null;
  }
  ctx = await acquireBrowserDevice();
  return ctx;
}

function needModel(): LoadedModel {
  if (!model) throw new EngineError('NOT_LOADED', 'No model is loaded in the worker. Call load() with a GGUF file or URL first.');
  return model;
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

async function fetchBlob(url: string, onProgress?: RemoteCallback<LoadProgressEvent>): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
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
  if (!res.body || !onProgress) return res.blob();
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loadedBytes = 0;
  let last = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
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
    model: model ? modelInfo(model) : null,
  };
}

function unloadNow(): void {
  const m = model;
  model = null;
  m?.destroy();
}

const api = {
  /** Load a GGUF model (replacing any loaded one) and describe it. */
  load(source: ModelSource, opts: WorkerLoadOptions = {}, onProgress?: RemoteCallback<LoadProgressEvent>): Promise<EngineInfo> {
    return serial(async () => {
      const c = await device();
      // Free the old weights first: two models may not fit side by side.
      unloadNow();
      let src: ByteSource;
      if (typeof source === 'string') src = blobSource(await fetchBlob(source, onProgress));
      else if (source instanceof ArrayBuffer) src = bufferSource(source);
      else if (source instanceof Blob) src = blobSource(source);
      else throw new EngineError('BAD_REQUEST', 'load() takes a URL string, an ArrayBuffer or a Blob/File.');
      let lastPct = -1;
      model = await loadModel(c, src, {
        ...(opts.maxContext !== undefined ? { maxContext: opts.maxContext } : {}),
        ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
        onProgress: (loadedBytes, totalBytes) => {
          const pct = Math.floor((100 * loadedBytes) / Math.max(1, totalBytes));
          if (pct === lastPct) return;
          lastPct = pct;
          notify(onProgress, { phase: 'upload', loadedBytes, totalBytes });
        },
      });
      return engineInfo(c);
    });
  },

  /**
   * Generate for one request. Tokens go to `onTokens` in batches; the last batch arrives before
   * the result. `call.id` names the request for abort(); `call.aborted` says the caller's signal
   * had fired before the call (an abort() message could only arrive after the first token).
   */
  generate(req: WireGenerateRequest, call: { id?: number; aborted?: boolean } = {}, onTokens?: RemoteCallback<TokenBatch>): Promise<GenerateResult> {
    const { id } = call;
    const ac = new AbortController();
    if (call.aborted) ac.abort();
    if (id !== undefined) running.set(id, ac);
    return serial(async () => {
      const m = needModel();
      let batch: TokenBatch = { tokens: [], text: '' };
      let lastFlush = performance.now();
      const flush = (): void => {
        if (batch.tokens.length === 0 && batch.text.length === 0) return;
        notify(onTokens, batch);
        batch = { tokens: [], text: '' };
        lastFlush = performance.now();
      };
      const r = await generate(m, {
        ...req,
        signal: ac.signal,
        ...(onTokens
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
    }).finally(() => {
      if (id !== undefined) running.delete(id);
    });
  },

  /** Stop a running or queued generate() by id; it returns what it has with finishReason 'abort'. */
  abort(id: number): void {
    running.get(id)?.abort();
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
    return serial(() => {
      unloadNow();
      return Promise.resolve();
    });
  },

  /** Adapter, device limits and the loaded model (acquires the device if needed). */
  info(): Promise<EngineInfo> {
    // Answer at once while a request runs; only acquiring the device has to wait its turn.
    if (ctx && !ctx.lost) return Promise.resolve(engineInfo(ctx));
    return serial(async () => engineInfo(await device()));
  },
};

export type WorkerApi = typeof api;

expose(api);

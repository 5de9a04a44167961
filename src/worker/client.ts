// Main-thread client of the engine worker: starts src/worker/worker.ts as a module worker and
// wraps its comlink API (and its request port, for generate()) in a small typed object. A new
// worker call adds a method to WorkerEngine.

import { proxy, releaseProxy, transfer, wrap, type Remote } from 'comlink';
import type { BenchProgressEvent, Ceilings, WireBenchOptions, WorkerApi } from './worker.js';
import { EngineError } from '../api/errors.js';
import {
  installWireHandlers,
  RequestChannel,
  type BenchOptions,
  type BenchResult,
  type EngineInfo,
  type GenerateResult,
  type LoadProgressEvent,
  type ModelSource,
  type TokenBatch,
  type WireGenerateRequest,
  type WorkerLoadOptions,
} from './wire.js';

export type {
  BenchOptions,
  BenchProgressEvent,
  BenchResult,
  Ceilings,
  EngineInfo,
  GenerateResult,
  LoadProgressEvent,
  ModelSource,
  TokenBatch,
  WireGenerateRequest,
  WorkerLoadOptions,
};

export interface ClientBenchOptions extends WireBenchOptions {
  /** Running rates: once after the prefill, then every few decoded tokens. */
  onProgress?: (p: BenchProgressEvent) => void;
}

export interface ClientLoadOptions extends WorkerLoadOptions {
  onProgress?: (p: LoadProgressEvent) => void;
  /** Transfer (not copy) an ArrayBuffer source to the worker; the caller's buffer is detached. Default true. */
  transfer?: boolean;
  /**
   * Abort the load while it downloads or uploads weights: it rejects with ABORTED and frees what it
   * had allocated. The previously loaded model was freed when the load began, so none is loaded then.
   */
  signal?: AbortSignal;
}

let loadIds = 0;

/** What both clients (this file's and engine-client.ts's) hold of a running worker. */
export interface WorkerConnection {
  worker: Worker;
  /** Model-wide calls (load, info, bench...), over comlink. */
  remote: Remote<WorkerApi>;
  /** Generation requests, on their own port (wire.ts says why). */
  requests: RequestChannel;
  /** A comlink call that rejects with ABORTED at terminate(): a terminated worker never answers. */
  guard: <T>(p: Promise<T>) => Promise<T>;
  /** Stop the worker: pending requests and guarded calls reject with ABORTED (requests: with `reason`). */
  terminate: (reason?: Error) => void;
}

/** Start worker.ts (or take `worker`, already running it) and connect to it: comlink plus the request port. */
export function connectWorker(worker?: Worker): WorkerConnection {
  installWireHandlers();
  // Spelled literally so Vite (and other bundlers) see the worker entry and bundle it as a module worker.
  const w = worker ?? new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'hearth-engine' });
  const remote = wrap<WorkerApi>(w);
  // The worker starts serving the request port when connect() arrives; what is posted before waits in the port.
  const channel = new MessageChannel();
  void remote.connect(transfer(channel.port2, [channel.port2]));
  const requests = new RequestChannel(channel.port1);
  let fail!: (e: Error) => void;
  const ended = new Promise<never>((_, reject) => (fail = reject));
  // Nobody may be waiting when it ends.
  ended.catch(() => undefined);
  return {
    worker: w,
    remote,
    requests,
    guard: <T>(p: Promise<T>) => Promise.race([p, ended]),
    terminate: (reason) => {
      fail(new EngineError('ABORTED', 'The engine was terminated before the call finished.'));
      requests.close(reason);
      remote[releaseProxy]();
      w.terminate();
    },
  };
}

/** generate() over a worker's request port: token batches to `onTokens`, the signal as an abort message. */
export function generateInWorker(requests: RequestChannel, req: WireGenerateRequest, opts: ClientGenerateOptions): Promise<GenerateResult> {
  const { signal, onTokens } = opts;
  return requests.call<GenerateResult, TokenBatch>('generate', req, {
    signal,
    onItems: onTokens
      ? (batches) => {
          for (const b of batches) onTokens(b);
        }
      : undefined,
  });
}

/** load() on a worker's comlink API, with the caller's signal turned into abortLoad() messages. */
export async function loadInWorker(remote: Remote<WorkerApi>, source: ModelSource, opts: ClientLoadOptions): Promise<EngineInfo> {
  const { onProgress, transfer: doTransfer = true, signal, ...rest } = opts;
  if (signal?.aborted) throw new EngineError('ABORTED', 'Loading the model was aborted before it started.');
  const src = source instanceof ArrayBuffer && doTransfer ? transfer(source, [source]) : source;
  const cb = onProgress ? proxy((p: LoadProgressEvent) => onProgress(p)) : undefined;
  const id = ++loadIds;
  const abort = (): void => void remote.abortLoad(id);
  signal?.addEventListener('abort', abort, { once: true });
  try {
    return await remote.load(src, rest, cb, id);
  } finally {
    signal?.removeEventListener('abort', abort);
  }
}

export interface ClientGenerateOptions {
  /** Aborting stops generation after the current token; the result has finishReason 'abort'. */
  signal?: AbortSignal;
  /** Streamed tokens, a few at a time, in order; the last batch arrives before the result. */
  onTokens?: (batch: TokenBatch) => void;
}

/**
 * The engine running in a Web Worker. Errors are EngineErrors with their code and details.
 *
 * @example
 * const engine = createWorkerEngine();
 * await engine.load('/models/llama-f32.gguf');
 * const r = await engine.generate({ prompt: 'Hello', maxTokens: 16, temperature: 0 });
 */
export interface WorkerEngine {
  load(source: ModelSource, opts?: ClientLoadOptions): Promise<EngineInfo>;
  generate(req: WireGenerateRequest, opts?: ClientGenerateOptions): Promise<GenerateResult>;
  bench(opts: ClientBenchOptions): Promise<BenchResult>;
  /** Streaming-read (GB/s) and matmul (GFLOP/s) ceilings of the worker's adapter. */
  ceilings(): Promise<Ceilings>;
  unload(): Promise<void>;
  info(): Promise<EngineInfo>;
  /** Stop the worker; the GPU memory it held is freed with it, and every pending call rejects with ABORTED. */
  terminate(): void;
}

export interface CreateWorkerEngineOptions {
  /** A worker already running worker.ts (e.g. from a bundler's worker import); default: a new one. */
  worker?: Worker;
}

export function createWorkerEngine(o: CreateWorkerEngineOptions = {}): WorkerEngine {
  const { remote, requests, guard, terminate } = connectWorker(o.worker);
  return {
    load: (source, opts = {}) => guard(loadInWorker(remote, source, opts)),

    generate: (req, opts = {}) => generateInWorker(requests, req, opts),

    bench(opts) {
      const { onProgress, ...rest } = opts;
      return guard(remote.bench(rest, onProgress ? proxy((p: BenchProgressEvent) => onProgress(p)) : undefined));
    },
    ceilings: () => guard(remote.ceilings()),
    unload: () => guard(remote.unload()),
    info: () => guard(remote.info()),
    terminate: () => terminate(),
  };
}

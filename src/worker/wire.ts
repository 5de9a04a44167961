// What crosses the worker boundary: the message shapes shared by worker.ts and the clients, the
// comlink throw handler that keeps EngineError's class, code and details, and the page's end of the
// request port (RequestChannel). A new message adds its types here.

import { transferHandlers, type TransferHandler } from 'comlink';
import { EngineError, type ErrorCode, type ErrorDetails } from '../api/errors.js';
import type { AdapterSummary, GpuFeatures } from '../gpu/device.js';
import type { ChatCompletionCreateParamsBase, CompletionCreateParamsBase } from '../api/types.js';
import type { BenchOptions, BenchResult } from '../engine/bench.js';
import type { GenerateRequest, GenerateResult } from '../engine/generate.js';
import type { ModelConfig } from '../model/config.js';
import type { SchedulerStats, SpeculativeOptions } from '../engine/scheduler.js';

/** A model to load: a URL (fetched by the worker), the file's bytes (transferred), or a Blob/File. */
export type ModelSource = string | ArrayBuffer | Blob;

export interface WorkerLoadOptions {
  /** Longest sequence in tokens (default: the model's context length, capped at 4096). */
  maxContext?: number;
  /** Tokens per forward pass, the step's token budget (default 256). */
  maxBatch?: number;
  /** Most sequences served in one step (default 32). */
  maxSeqs?: number;
  /** Tokens per KV block, a power of two (default 16). */
  blockSize?: number;
  /** Tokens the KV pool holds across all sequences (default 2 × maxContext). */
  kvCacheTokens?: number;
  /** Reported as `model` in OpenAI-shaped responses when a request names none (default 'hearth-local'). */
  modelName?: string;
  /** A semantic cache in this origin's IndexedDB (the lexical embedder): `true` for the defaults. */
  semanticCache?: boolean | WorkerCacheOptions;
  /** A draft model for speculative decoding (same vocabulary as the model), loaded beside it: requests use it with speculative.draft 'model'. */
  draft?: ModelSource;
  /** Speculative decoding for requests that do not set `speculative` (default off). */
  speculative?: SpeculativeOptions;
}

/** The worker's semantic cache: persisted in IndexedDB, so answers survive a reload. */
export interface WorkerCacheOptions {
  /** IndexedDB database name (default 'hearth-semantic-cache'). */
  dbName?: string;
  /** Minimum cosine similarity for a hit (default: the embedder's calibrated threshold). */
  threshold?: number;
  /** Entry lifetime in ms (default 7 days). */
  ttlMs?: number;
  /** Byte budget of the entries, least recently used evicted first (default 64 MiB). */
  maxBytes?: number;
  /** Use the cache for chat requests that do not set `cache.semantic` (default false). */
  byDefault?: boolean;
}

/** Load progress: 'download' while a URL is fetched (totalBytes 0 when the server sends no length), 'upload' while weights go to the GPU. */
export interface LoadProgressEvent {
  phase: 'download' | 'upload';
  loadedBytes: number;
  totalBytes: number;
}

/** A generate request as plain data; cancellation and streaming go through the client's options. */
export type WireGenerateRequest = Omit<GenerateRequest, 'signal' | 'onToken'>;

/** Streamed tokens, pushed in batches (a few per message) to keep the message rate low. */
export interface TokenBatch {
  tokens: number[];
  /** The text these tokens complete, in order (a UTF-8 sequence may span batches). */
  text: string;
}

export type { BenchOptions, BenchResult, GenerateResult };

/** chat.completions.create() parameters as plain data: the signal becomes a request id, `stream` a callback. */
export type WireChatParams = Omit<ChatCompletionCreateParamsBase, 'signal' | 'stream'>;

/** completions.create() parameters as plain data. */
export type WireCompletionParams = Omit<CompletionCreateParamsBase, 'signal' | 'stream'>;

export interface ModelInfo {
  name: string;
  arch: ModelConfig['arch'];
  config: ModelConfig;
  /** Bytes of GPU memory: weights plus activations and KV cache. */
  gpuBytes: number;
  weightBytes: number;
  runtimeBytes: number;
  fileBytes: number;
  maxContext: number;
  hasChatTemplate: boolean;
  /** The serving loop's counters so far (steps, most sequences in one step, preemptions, prefix-cache hits). */
  serving: SchedulerStats;
}

export interface EngineInfo {
  /** One-line adapter description (vendor, architecture, description, fallback note). */
  adapter: string;
  adapterInfo: AdapterSummary;
  /** True on software adapters (SwiftShader): hearth runs there, slowly. */
  isFallback: boolean;
  features: GpuFeatures;
  maxBufferSizeBytes: number;
  maxStorageBufferBindingSizeBytes: number;
  model: ModelInfo | null;
}

// ---- errors across the boundary -------------------------------------------------------------

export type WireError =
  | { kind: 'engine'; code: ErrorCode; message: string; details: ErrorDetails; stack?: string }
  | { kind: 'error'; name: string; message: string; stack?: string }
  | { kind: 'value'; value: unknown };

/** comlink wraps a thrown value as `{ value, [throwMarker]: 0 }`; its own handler recognises that. */
interface Thrown {
  value: unknown;
}

export function toWireError(e: unknown): WireError {
  if (e instanceof EngineError) {
    const j = e.toJSON();
    return { kind: 'engine', code: j.code, message: j.message, details: j.details, ...(e.stack !== undefined ? { stack: e.stack } : {}) };
  }
  if (e instanceof Error) return { kind: 'error', name: e.name, message: e.message, ...(e.stack !== undefined ? { stack: e.stack } : {}) };
  return { kind: 'value', value: e };
}

export function fromWireError(w: WireError): unknown {
  if (w.kind === 'engine') {
    const err = EngineError.fromJSON(w);
    // The worker's stack says where it was thrown; the local one would only show comlink.
    if (w.stack !== undefined) err.stack = w.stack;
    return err;
  }
  if (w.kind === 'error') {
    const err = new Error(w.message);
    err.name = w.name;
    if (w.stack !== undefined) err.stack = w.stack;
    return err;
  }
  return w.value;
}

let installed = false;

/** Replace comlink's 'throw' handler (which keeps only name/message/stack); call on both sides. */
export function installWireHandlers(): void {
  if (installed) return;
  installed = true;
  const base = transferHandlers.get('throw');
  if (!base) throw new Error("hearth internal error: comlink has no 'throw' transfer handler");
  const handler: TransferHandler<Thrown, WireError> = {
    canHandle: (v): v is Thrown => base.canHandle(v),
    serialize: (t) => [toWireError(t.value), []],
    deserialize: (w) => {
      // comlink's protocol: deserializing a thrown value throws it in the caller.
      throw fromWireError(w);
    },
  };
  transferHandlers.set('throw', handler);
}

// ---- the request port -----------------------------------------------------------------------

/**
 * Generation requests and their streams travel on one MessagePort per client, not through comlink:
 * a page → worker → page round trip costs ~0.06 ms on a plain port against ~0.3 ms (p90 1.3 ms)
 * through a comlink call, and a comlink callback per stream adds a fresh port whose first message is
 * slower still; on a 20 ms time to first token that was the whole worker overhead. One ordered port
 * also keeps a stream's last chunks ahead of its result. Load, bench, info and the rest stay on comlink.
 */
export type RequestOp = 'chat' | 'completion' | 'generate';

/** Page → worker. `aborted`: the caller's signal had fired before the call. */
export type ToWorker = { t: 'call'; id: number; op: RequestOp; params: unknown; stream: boolean; aborted: boolean } | { t: 'abort'; id: number };

/** Worker → page: streamed items (chunks, or token batches for 'generate'), then one done or error. */
export type FromWorker =
  { t: 'items'; id: number; items: unknown[] } | { t: 'done'; id: number; value: unknown } | { t: 'error'; id: number; error: WireError };

interface Pending {
  onItems: ((items: unknown[]) => void) | undefined;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** The page's end of the request port: numbered calls, their streamed items, abort by signal. */
export class RequestChannel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly port: MessagePort) {
    port.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data);
  }

  /**
   * Run `op` in the worker. Streamed items go to `onItems` in order, all before the promise
   * settles; `signal` aborts the request there (it ends as the engine ends an aborted request).
   */
  call<R, I>(op: RequestOp, params: unknown, opts: { signal?: AbortSignal | undefined; onItems?: ((items: I[]) => void) | undefined } = {}): Promise<R> {
    const id = this.nextId++;
    const { signal, onItems } = opts;
    const abort = (): void => this.port.postMessage({ t: 'abort', id } satisfies ToWorker);
    return new Promise<R>((resolve, reject) => {
      const done = (): void => {
        this.pending.delete(id);
        signal?.removeEventListener('abort', abort);
      };
      this.pending.set(id, {
        onItems: onItems as ((items: unknown[]) => void) | undefined,
        resolve: (v) => {
          done();
          resolve(v as R);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      try {
        this.port.postMessage({ t: 'call', id, op, params, stream: onItems !== undefined, aborted: signal?.aborted ?? false } satisfies ToWorker);
      } catch (e) {
        // A parameter the structured clone cannot copy (a function, a DOM node): nothing was sent.
        done();
        reject(new EngineError('BAD_REQUEST', `The request cannot be sent to the engine worker: ${e instanceof Error ? e.message : String(e)}`));
        return;
      }
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  private receive(m: FromWorker): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.t === 'items') p.onItems?.(m.items);
    else if (m.t === 'done') p.resolve(m.value);
    else {
      const err = fromWireError(m.error);
      p.reject(err instanceof Error ? err : new EngineError('GPU_ERROR', `The engine worker failed with ${JSON.stringify(err)}`));
    }
  }

  /** Stop using the port; requests still pending reject with `reason` (streams end with it). */
  close(reason: Error = new EngineError('ABORTED', 'The engine was terminated before the request finished.')): void {
    this.port.onmessage = null;
    this.port.close();
    for (const p of [...this.pending.values()]) p.reject(reason);
  }
}

// createEngine(): the OpenAI-shaped Engine on the main thread, with the model in a module Web Worker (worker.ts).
// A new endpoint adds a worker method (worker.ts, types in wire.ts) and a create() here built on call().

import { proxy, releaseProxy, transfer, wrap, type ProxyMarked, type Remote } from 'comlink';
import type { ChatCompletions, Completions, Engine } from '../api/engine.js';
import { EngineError } from '../api/errors.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParams,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  Completion,
  CompletionChunk,
  CompletionCreateParams,
  CompletionCreateParamsNonStreaming,
  CompletionCreateParamsStreaming,
} from '../api/types.js';
import type { ClientLoadOptions } from './client.js';
import type { WorkerApi } from './worker.js';
import { installWireHandlers, type EngineInfo, type LoadProgressEvent, type ModelSource, type WireCall } from './wire.js';

export type { ClientLoadOptions, EngineInfo, LoadProgressEvent, ModelSource };

/**
 * An {@link Engine} whose model lives in a Web Worker: `chat.completions.create()` and
 * `completions.create()` behave as LocalEngine's (same overloads; `stream: true` gives an async
 * iterable of chunks; `signal` aborts within one step; errors are EngineErrors with their code and
 * details). Requests run one at a time in arrival order. A streamed create() resolves when its
 * request starts running (its first chunk has arrived) or rejects if it cannot start.
 */
export interface WorkerBackedEngine extends Engine {
  /** Load a GGUF model (replacing any loaded one); an ArrayBuffer is transferred unless `opts.transfer` is false. */
  load(source: ModelSource, opts?: ClientLoadOptions): Promise<EngineInfo>;
  /** Wait for running requests, then free the model's GPU memory; the worker and its device stay. */
  unload(): Promise<void>;
  /** Adapter, device limits and the loaded model. */
  info(): Promise<EngineInfo>;
  /** Stop the worker; the GPU memory it held is freed with it, and pending requests never settle. */
  terminate(): void;
}

export interface CreateEngineOptions {
  /** A worker already running worker.ts (e.g. from a bundler's worker import); default: a new one. */
  worker?: Worker;
}

type ChunkCallback<C> = ((chunks: C[]) => void) & ProxyMarked;

/** Streamed chunks on the main thread: the worker's batches go in, the caller's `for await` takes them out. */
class ChunkStream<C> implements AsyncIterable<C> {
  private items: C[] = [];
  private waiting: { resolve: (r: IteratorResult<C>) => void; reject: (e: Error) => void } | null = null;
  private done = false;
  private error: Error | null = null;
  private iterated = false;

  constructor(private readonly onCancel: () => void) {}

  pushAll(chunks: readonly C[]): void {
    if (this.done) return;
    for (const c of chunks) {
      const w = this.waiting;
      if (w) {
        this.waiting = null;
        w.resolve({ value: c, done: false });
      } else this.items.push(c);
    }
  }

  end(cause: unknown = null): void {
    if (this.done) return;
    this.done = true;
    this.error = cause === null || cause instanceof Error ? cause : new EngineError('GPU_ERROR', `Generation failed: ${JSON.stringify(cause)}`);
    const w = this.waiting;
    this.waiting = null;
    if (!w) return;
    if (this.error !== null) w.reject(this.error);
    else w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<C> {
    if (this.iterated) throw new EngineError('BAD_REQUEST', 'A completion stream can be iterated only once.');
    this.iterated = true;
    return {
      next: (): Promise<IteratorResult<C>> => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.done) return this.error !== null ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
      },
      // `break` out of `for await`: stop the request in the worker (it ends as an abort there).
      return: (): Promise<IteratorResult<C>> => {
        if (!this.done) this.onCancel();
        this.done = true;
        this.items = [];
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** The request parameters hearth takes on the main thread but not across the boundary. */
interface LocalOnly {
  signal?: AbortSignal;
  stream?: boolean | null;
}

/**
 * Start the OpenAI-shaped engine in a module Web Worker. Resolves once the worker runs and holds a
 * GPU device (rejects with EngineError WEBGPU_UNAVAILABLE when there is none); then load a model.
 *
 * @example
 * const engine = await createEngine();
 * await engine.load('/models/llama-f32.gguf');
 * const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0 });
 * for await (const c of await engine.chat.completions.create({ messages, stream: true })) out.textContent += c.choices[0]?.delta.content ?? '';
 */
export async function createEngine(o: CreateEngineOptions = {}): Promise<WorkerBackedEngine> {
  installWireHandlers();
  // Spelled literally so Vite (and other bundlers) see the worker entry and bundle it as a module worker.
  const worker = o.worker ?? new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'hearth-engine' });
  const remote: Remote<WorkerApi> = wrap<WorkerApi>(worker);
  let nextId = 1;

  /**
   * One request: the signal becomes abort(id) messages; without `stream` the worker's result is
   * returned, with it a ChunkStream fed by the worker's batches.
   */
  async function call<P extends LocalOnly, R, C>(
    params: P,
    invoke: (wire: Omit<P, keyof LocalOnly>, c: WireCall, onChunks: ChunkCallback<C> | undefined) => Promise<R | null>,
  ): Promise<R | AsyncIterable<C>> {
    const { signal, stream, ...wire } = params;
    const id = nextId++;
    const abort = (): void => {
      void remote.abort(id);
    };
    signal?.addEventListener('abort', abort, { once: true });
    const cleanup = (): void => signal?.removeEventListener('abort', abort);
    const c: WireCall = { id, aborted: signal?.aborted ?? false };
    if (stream !== true) {
      try {
        const r = await invoke(wire, c, undefined);
        if (r === null) throw new EngineError('GPU_ERROR', 'hearth internal error: the worker streamed a request that was not streamed.');
        return r;
      } finally {
        cleanup();
      }
    }
    const chunks = new ChunkStream<C>(abort);
    let started!: () => void;
    let failed!: (e: unknown) => void;
    const start = new Promise<void>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    const onChunks = proxy((cs: C[]) => {
      chunks.pushAll(cs);
      started();
    });
    invoke(wire, c, onChunks)
      .then(
        () => {
          chunks.end();
          started();
        },
        (e: unknown) => {
          chunks.end(e);
          failed(e);
        },
      )
      .finally(cleanup);
    await start;
    return chunks;
  }

  function chatCreate(params: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion>;
  function chatCreate(params: ChatCompletionCreateParamsStreaming): Promise<AsyncIterable<ChatCompletionChunk>>;
  function chatCreate(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
  function chatCreate(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    return call<ChatCompletionCreateParams, ChatCompletion, ChatCompletionChunk>(params, (wire, c, cb) => remote.chatCreate(wire, c, cb));
  }

  function completionCreate(params: CompletionCreateParamsNonStreaming): Promise<Completion>;
  function completionCreate(params: CompletionCreateParamsStreaming): Promise<AsyncIterable<CompletionChunk>>;
  function completionCreate(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>>;
  function completionCreate(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>> {
    return call<CompletionCreateParams, Completion, CompletionChunk>(params, (wire, c, cb) => remote.completionCreate(wire, c, cb));
  }

  const chat: { readonly completions: ChatCompletions } = { completions: { create: chatCreate } };
  const completions: Completions = { create: completionCreate };

  // A worker that cannot get a device says so here, before any model is fetched.
  await remote.info();

  return {
    chat,
    completions,
    async load(source, opts = {}) {
      const { onProgress, transfer: doTransfer = true, ...rest } = opts;
      const src = source instanceof ArrayBuffer && doTransfer ? transfer(source, [source]) : source;
      return remote.load(src, rest, onProgress ? proxy((p: LoadProgressEvent) => onProgress(p)) : undefined);
    },
    unload: () => remote.unload(),
    info: () => remote.info(),
    terminate() {
      remote[releaseProxy]();
      worker.terminate();
    },
  };
}

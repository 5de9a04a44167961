// createEngine(): the OpenAI-shaped Engine on the main thread, with the model in a module Web Worker (worker.ts).
// A new endpoint adds a RequestOp (wire.ts, served by worker.ts runRequest()) and a create() here built on call().

import type { ChatCompletions, Completions, Engine } from '../api/engine.js';
import { ChunkStream } from '../api/chunk-stream.js';
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
import { connectWorker, generateInWorker, loadInWorker, type ClientGenerateOptions, type ClientLoadOptions } from './client.js';
import { type EngineInfo, type GenerateResult, type LoadProgressEvent, type ModelSource, type RequestOp, type WireGenerateRequest } from './wire.js';

export type { ClientGenerateOptions, ClientLoadOptions, EngineInfo, GenerateResult, LoadProgressEvent, ModelSource, WireGenerateRequest };

/**
 * An {@link Engine} whose model lives in a Web Worker: `chat.completions.create()` and
 * `completions.create()` behave as LocalEngine's (same overloads; `stream: true` gives an async
 * iterable of chunks; `signal` aborts within one step; errors are EngineErrors with their code and
 * details). Requests run concurrently, batched by the worker's scheduler. A streamed create() resolves when its
 * request starts running (its first chunk has arrived) or rejects if it cannot start.
 */
export interface WorkerBackedEngine extends Engine {
  /** Load a GGUF model (replacing any loaded one); an ArrayBuffer is transferred unless `opts.transfer` is false. */
  load(source: ModelSource, opts?: ClientLoadOptions): Promise<EngineInfo>;
  /** Wait for running requests, then free the model's GPU memory; the worker and its device stay. */
  unload(): Promise<void>;
  /** Adapter, device limits and the loaded model. */
  info(): Promise<EngineInfo>;
  /** The lower-level generate() (token ids, timings), as createWorkerEngine() has it; the demo's completion mode uses it. */
  generate(req: WireGenerateRequest, opts?: ClientGenerateOptions): Promise<GenerateResult>;
  /**
   * Stop the worker; the GPU memory it held is freed with it. Everything still pending rejects with
   * ABORTED: requests (a stream ends with that error), load(), unload() and info().
   */
  terminate(): void;
}

export interface CreateEngineOptions {
  /** A worker already running worker.ts (e.g. from a bundler's worker import); default: a new one. */
  worker?: Worker;
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
  const { worker, remote, requests, guard, terminate } = connectWorker(o.worker);

  /**
   * One request: without `stream` the worker's result is returned; with it a ChunkStream fed by the
   * worker's batches, returned once the first batch has arrived (or the request has ended).
   */
  async function call<P extends LocalOnly, R, C>(op: RequestOp, params: P): Promise<R | AsyncIterable<C>> {
    const { signal, stream, ...wire } = params;
    if (stream !== true) {
      const r = await requests.call<R | null, never>(op, wire, { signal });
      if (r === null) throw new EngineError('GPU_ERROR', 'hearth internal error: the worker streamed a request that was not streamed.');
      return r;
    }
    // Breaking out of `for await` aborts the request in the worker, as the caller's signal does.
    const cancel = new AbortController();
    const onUserAbort = (): void => cancel.abort();
    if (signal?.aborted) cancel.abort();
    signal?.addEventListener('abort', onUserAbort, { once: true });
    const chunks = new ChunkStream<C>(() => cancel.abort());
    let started!: () => void;
    let failed!: (e: unknown) => void;
    const start = new Promise<void>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    requests
      .call<null, C>(op, wire, {
        signal: cancel.signal,
        onItems: (cs) => {
          chunks.pushAll(cs);
          started();
        },
      })
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
      .finally(() => signal?.removeEventListener('abort', onUserAbort));
    await start;
    return chunks;
  }

  function chatCreate(params: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion>;
  function chatCreate(params: ChatCompletionCreateParamsStreaming): Promise<AsyncIterable<ChatCompletionChunk>>;
  function chatCreate(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
  function chatCreate(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    return call<ChatCompletionCreateParams, ChatCompletion, ChatCompletionChunk>('chat', params);
  }

  function completionCreate(params: CompletionCreateParamsNonStreaming): Promise<Completion>;
  function completionCreate(params: CompletionCreateParamsStreaming): Promise<AsyncIterable<CompletionChunk>>;
  function completionCreate(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>>;
  function completionCreate(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>> {
    return call<CompletionCreateParams, Completion, CompletionChunk>('completion', params);
  }

  const chat: { readonly completions: ChatCompletions } = { completions: { create: chatCreate } };
  const completions: Completions = { create: completionCreate };

  // A worker that cannot get a device says so here, before any model is fetched; one whose script
  // fails to load or throws while starting fires 'error' instead of ever answering.
  let onError: ((e: Event) => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    onError = (e: Event) => {
      const message = e instanceof ErrorEvent && e.message ? e.message : 'the worker script could not be loaded or threw while starting';
      reject(new EngineError('GPU_ERROR', `The engine worker failed to start: ${message}.`, { message }));
    };
    worker.addEventListener('error', onError, { once: true });
  });
  try {
    await Promise.race([remote.info(), failed]);
  } catch (e) {
    terminate(e instanceof Error ? e : undefined);
    throw e;
  } finally {
    worker.removeEventListener('error', onError!);
  }

  return {
    chat,
    completions,
    load: (source, opts = {}) => guard(loadInWorker(remote, source, opts)),
    unload: () => guard(remote.unload()),
    info: () => guard(remote.info()),
    generate: (req, opts = {}) => generateInWorker(requests, req, opts),
    terminate: () => terminate(),
  };
}

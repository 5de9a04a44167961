// LocalEngine: the OpenAI-shaped Engine over one loaded model on this thread (streaming, stop strings, abort).
// Concurrent requests are served together by the model's Scheduler (continuous batching).
// To add an endpoint, implement it on top of run() (which owns the queue, stop strings and abort) and add it to Engine.

import type { ChatCompletions, Completions, Engine } from '../api/engine.js';
import { ChunkStream } from '../api/chunk-stream.js';
import { EngineError } from '../api/errors.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParams,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionTokenLogprob,
  Completion,
  CompletionChunk,
  CompletionCreateParams,
  CompletionCreateParamsNonStreaming,
  CompletionCreateParamsStreaming,
  CompletionLogprobs,
  CompletionUsage,
  FinishReason,
  SamplingRequestParams,
} from '../api/types.js';
import type { GpuContext } from '../gpu/device.js';
import { MAX_LOGPROBS } from '../kernels/sample.js';
import type { ByteSource } from '../model/byte-source.js';
import { encodeChatPrompt, renderChatTemplate, specialTokenTexts } from '../model/chat-template.js';
import { loadModel, type LoadedModel, type LoadOptions } from '../model/model.js';
import type { Tokenizer } from '../model/tokenizer.js';
import { checkSpeculative, generate, type GenerateResult } from './generate.js';
import type { SpeculativeOptions } from './scheduler.js';
import { hashContext, samplingKey, type CacheKey, type SemanticCache } from '../cache/semantic-cache.js';

/** What the engine needs besides the model: a response label and an optional semantic cache. */
export interface EngineExtras {
  /** Reported as `model` in responses when a request names none (default 'hearth-local'). */
  modelName?: string;
  /** Answers repeated questions from here (chat requests with `cache.semantic`, or every chat request with semanticCacheByDefault). */
  semanticCache?: SemanticCache;
  /** Use the semantic cache for chat requests that do not say (default false). */
  semanticCacheByDefault?: boolean;
  /** Speculative decoding for requests that do not set `speculative` (default off). */
  speculative?: SpeculativeOptions;
}

export interface LocalEngineOptions extends LoadOptions, EngineExtras {}

/** What the semantic cache stores per answer. */
interface CachedAnswer {
  text: string;
  finish_reason: 'stop' | 'length';
  completion_tokens: number;
}

function isCachedAnswer(x: unknown): x is CachedAnswer {
  const a = x as CachedAnswer;
  return !!a && typeof a.text === 'string' && (a.finish_reason === 'stop' || a.finish_reason === 'length') && Number.isInteger(a.completion_tokens);
}

/** A chat request's place in the semantic cache: its key, its query, whether it may take a stored answer. */
interface CacheUse {
  cache: SemanticCache;
  key: CacheKey;
  query: string;
  mayHit: boolean;
}

/** What run() needs besides the prompt: resolved sampling settings. */
interface RunSpec {
  promptTokens: number[];
  params: SamplingRequestParams;
  maxTokens: number;
  topLogprobs: number;
  /** Called with text that is safe to show: never part of a possible stop string, never half a character. */
  onText?: (text: string, tokens: number[]) => void;
}

/** Longest suffix of `text` that is a proper prefix of some stop string. */
function heldBackLength(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const s of stops)
    for (let k = Math.min(s.length - 1, text.length); k > held; k--)
      if (text.endsWith(s.slice(0, k))) {
        held = k;
        break;
      }
  return held;
}

function stopList(stop: SamplingRequestParams['stop']): string[] {
  if (stop === undefined || stop === null) return [];
  return (typeof stop === 'string' ? [stop] : stop).filter((s) => s.length > 0);
}

function nullable(v: number | null | undefined): number | undefined {
  return v === null ? undefined : v;
}

let nextId = 0;
function makeId(prefix: string): string {
  nextId += 1;
  return `${prefix}-${Date.now().toString(36)}${nextId.toString(36)}`;
}

/** `chat.completions` with OpenAI's overloads: `stream: true` gives chunks, otherwise one completion. */
class ChatCompletionsApi implements ChatCompletions {
  constructor(private readonly impl: (p: ChatCompletionCreateParams) => Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>) {}
  create(params: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParamsStreaming): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    return this.impl(params);
  }
}

/** `completions` with OpenAI's overloads. */
class CompletionsApi implements Completions {
  constructor(private readonly impl: (p: CompletionCreateParams) => Promise<Completion | AsyncIterable<CompletionChunk>>) {}
  create(params: CompletionCreateParamsNonStreaming): Promise<Completion>;
  create(params: CompletionCreateParamsStreaming): Promise<AsyncIterable<CompletionChunk>>;
  create(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>>;
  create(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>> {
    return this.impl(params);
  }
}

/**
 * An {@link Engine} that runs the model on this thread (in the browser it is what the worker
 * holds; in Node it is the engine itself). Concurrent requests are batched into the same steps;
 * a follow-up turn (or any prompt sharing full KV blocks with an earlier one) reuses their KV.
 *
 * @example
 * const engine = await LocalEngine.load(await acquireNodeDevice(), await fileSource('model.gguf'));
 * const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0 });
 * for await (const c of await engine.chat.completions.create({ messages, stream: true })) process.stdout.write(c.choices[0]?.delta.content ?? '');
 */
export class LocalEngine implements Engine {
  /** OpenAI's `client.chat.completions`. */
  readonly chat: { readonly completions: ChatCompletions };
  /** OpenAI's legacy `client.completions` (raw prompt). */
  readonly completions: Completions;
  private model: LoadedModel | null;
  /** Requests in flight: unload() aborts them and waits for them to end. */
  private readonly inFlight = new Map<Promise<unknown>, AbortController>();
  private readonly modelName: string;

  /** Wrap an already loaded model; the engine owns it from now on (unload() destroys it). */
  private readonly semanticCache: SemanticCache | null;
  private readonly semanticCacheByDefault: boolean;
  /** Speculative decoding for requests that do not set their own (LocalEngineOptions.speculative), checked. */
  readonly speculative: SpeculativeOptions | null;
  /** The model's identity in semantic-cache keys: a hash of its configuration, size and chat template. */
  private readonly modelId: string;

  constructor(model: LoadedModel, opts: EngineExtras = {}) {
    this.model = model;
    this.modelName = opts.modelName ?? 'hearth-local';
    this.semanticCache = opts.semanticCache ?? null;
    this.semanticCacheByDefault = opts.semanticCacheByDefault ?? false;
    this.speculative = opts.speculative ? checkSpeculative(opts.speculative) : null;
    this.modelId = hashContext([JSON.stringify(model.cfg), String(model.weights.fileBytes), model.chatTemplate ?? '']);
    this.chat = { completions: new ChatCompletionsApi((p) => this.createChat(p)) };
    this.completions = new CompletionsApi((p) => this.createCompletion(p));
  }

  /** Load a GGUF model (and opts.draft) and wrap it in an engine. The engine owns the sources: they are closed once the weights are on the GPU (or the load fails). */
  static async load(ctx: GpuContext, src: ByteSource, opts: LocalEngineOptions = {}): Promise<LocalEngine> {
    try {
      return new LocalEngine(await loadModel(ctx, src, opts), opts);
    } finally {
      await src.close?.();
      await opts.draft?.close?.();
    }
  }

  /** The loaded model (for tests and tools); throws NOT_LOADED after unload(). */
  get loaded(): LoadedModel {
    if (!this.model) throw new EngineError('NOT_LOADED', 'The engine has no model: it was unloaded. Load a model first.');
    return this.model;
  }

  /** The prompt text a chat request is rendered to (the model's chat template or the ChatML fallback). */
  renderChat(messages: ChatCompletionCreateParams['messages']): string {
    const m = this.loaded;
    return renderChatTemplate(m.chatTemplate, messages, specialTokenTexts(m.tokenizer));
  }

  /** Abort every request in flight, wait for them to end, then free the model's GPU memory. */
  async unload(): Promise<void> {
    for (const c of this.inFlight.values()) c.abort();
    await Promise.allSettled([...this.inFlight.keys()]);
    this.model?.destroy();
    this.model = null;
  }

  private async createChat(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const tokenizer = this.loaded.tokenizer;
    const maxTokens = nullable(params.max_completion_tokens) ?? nullable(params.max_tokens) ?? Infinity;
    const promptTokens = this.checkPrompt(encodeChatPrompt(tokenizer, this.renderChat(params.messages)), maxTokens);
    const topLogprobs = params.logprobs ? Math.min(MAX_LOGPROBS, Math.max(0, params.top_logprobs ?? 0)) : -1;
    const id = makeId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const model = params.model ?? this.modelName;
    const spec = { promptTokens, params, maxTokens, topLogprobs };
    const chatLogprobs = (r: GenerateResult, from: number, to: number) =>
      topLogprobs >= 0 ? { content: this.tokenLogprobs(r, from, to, topLogprobs), refusal: null } : null;

    const cacheUse = this.cacheUse(params, maxTokens);
    if (cacheUse?.mayHit) {
      const hit = await cacheUse.cache.lookup<CachedAnswer>(cacheUse.key, cacheUse.query);
      if (hit && isCachedAnswer(hit.entry.response))
        return this.cachedChat(params, promptTokens.length, hit.entry.response, hit.similarity, { id, created, model });
    }
    const hearth = cacheUse ? { hearth: { cache: { hit: false } } } : {};

    if (params.stream !== true) {
      const r = await this.runExclusive(spec);
      if (cacheUse) await this.remember(cacheUse, r);
      return {
        ...hearth,
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: r.text, refusal: null },
            finish_reason: notAborted(r),
            logprobs: chatLogprobs(r, 0, r.tokens.length),
          },
        ],
        usage: usage(r),
      };
    }
    const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], finishReason: FinishReason | null): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    });
    return this.stream<ChatCompletionChunk>(spec, {
      first: () => chunk({ role: 'assistant', content: '' }, null),
      text: (text) => chunk({ content: text }, null),
      last: (text, r) => {
        if (cacheUse) void this.remember(cacheUse, r);
        return {
          ...chunk(text === '' ? {} : { content: text }, r.finishReason),
          choices: [{ index: 0, delta: text === '' ? {} : { content: text }, finish_reason: r.finishReason, logprobs: chatLogprobs(r, 0, r.tokens.length) }],
          usage: usage(r),
          ...hearth,
        };
      },
    });
  }

  /**
   * Whether and how a chat request uses the semantic cache. The query is the last message, which
   * must be the user's; everything before it is the context, hashed into the key with the model
   * and the settings that shape the answer. Requests asking for logprobs never use it (none are stored).
   */
  private cacheUse(params: ChatCompletionCreateParams, maxTokens: number): CacheUse | null {
    const cache = this.semanticCache;
    if (!cache || !(params.cache?.semantic ?? this.semanticCacheByDefault) || params.logprobs) return null;
    const last = params.messages.at(-1);
    if (!last || last.role !== 'user' || typeof last.content !== 'string') return null;
    const temperature = nullable(params.temperature) ?? 1;
    const sampling = samplingKey({
      temperature,
      top_p: nullable(params.top_p) ?? 1,
      top_k: nullable(params.top_k) ?? 0,
      seed: nullable(params.seed),
      max_tokens: Number.isFinite(maxTokens) ? maxTokens : null,
      stop: stopList(params.stop),
    });
    const context = hashContext(params.messages.slice(0, -1).map((m) => JSON.stringify([m.role, m.content])));
    return { cache, key: { model: this.modelId, context, sampling }, query: last.content, mayHit: temperature <= 0 || params.cache?.allowSampled === true };
  }

  /** Store a finished (not aborted) answer; a failing store never fails the request. */
  private async remember(use: CacheUse, r: GenerateResult): Promise<void> {
    if (r.finishReason === 'abort') return;
    const answer: CachedAnswer = { text: r.text, finish_reason: r.finishReason, completion_tokens: r.tokens.length };
    try {
      await use.cache.insert(use.key, use.query, answer);
    } catch (e) {
      console.warn('hearth: the semantic cache could not store an answer:', e);
    }
  }

  /** A stored answer as a ChatCompletion, or streamed as chunks (role, the text, then finish_reason and usage). */
  private cachedChat(
    params: ChatCompletionCreateParams,
    promptTokens: number,
    a: CachedAnswer,
    similarity: number,
    ids: { id: string; created: number; model: string },
  ): ChatCompletion | AsyncIterable<ChatCompletionChunk> {
    const hearth = { cache: { hit: true, similarity } };
    const use: CompletionUsage = {
      prompt_tokens: promptTokens,
      completion_tokens: a.completion_tokens,
      total_tokens: promptTokens + a.completion_tokens,
      prompt_tokens_details: { cached_tokens: 0 },
    };
    if (params.stream !== true)
      return {
        ...ids,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: a.text, refusal: null }, finish_reason: a.finish_reason, logprobs: null }],
        usage: use,
        hearth,
      };
    const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null): ChatCompletionChunk => ({
      ...ids,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, finish_reason: finish }],
      hearth,
    });
    const chunks = [
      chunk({ role: 'assistant', content: '' }, null),
      ...(a.text ? [chunk({ content: a.text }, null)] : []),
      { ...chunk({}, a.finish_reason), usage: use },
    ];
    return {
      [Symbol.asyncIterator]: (): AsyncIterator<ChatCompletionChunk> => {
        let i = 0;
        return { next: () => Promise.resolve(i < chunks.length ? { value: chunks[i++]!, done: false } : { value: undefined, done: true }) };
      },
    };
  }

  private async createCompletion(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>> {
    const tokenizer = this.loaded.tokenizer;
    if (typeof params.prompt !== 'string') throw new EngineError('BAD_REQUEST', 'prompt must be a string.');
    const maxTokens = nullable(params.max_tokens) ?? Infinity;
    const promptTokens = this.checkPrompt(tokenizer.encode(params.prompt, { addBos: tokenizer.addBos, parseSpecial: true }), maxTokens);
    const topLogprobs = params.logprobs === undefined || params.logprobs === null ? -1 : Math.min(MAX_LOGPROBS, Math.max(0, params.logprobs));
    const id = makeId('cmpl');
    const created = Math.floor(Date.now() / 1000);
    const model = params.model ?? this.modelName;
    const spec = { promptTokens, params, maxTokens, topLogprobs };
    const logprobs = (r: GenerateResult) => (topLogprobs >= 0 ? this.completionLogprobs(r, topLogprobs) : null);

    if (params.stream !== true) {
      const r = await this.runExclusive(spec);
      return {
        id,
        object: 'text_completion',
        created,
        model,
        choices: [{ index: 0, text: r.text, finish_reason: notAborted(r), logprobs: logprobs(r) }],
        usage: usage(r),
      };
    }
    const chunk = (text: string, finishReason: FinishReason | null, r?: GenerateResult): CompletionChunk => ({
      id,
      object: 'text_completion',
      created,
      model,
      choices: [{ index: 0, text, finish_reason: finishReason, logprobs: r ? logprobs(r) : null }],
      ...(r ? { usage: usage(r) } : {}),
    });
    return this.stream<CompletionChunk>(spec, {
      text: (text) => chunk(text, null),
      last: (text, r) => chunk(text, r.finishReason, r),
    });
  }

  /** Reject a request that can never run before a stream is handed out (as OpenAI rejects create()). */
  private checkPrompt(promptTokens: number[], maxTokens: number): number[] {
    const refused = this.loaded.scheduler.refusal(promptTokens.length, maxTokens);
    if (refused) throw refused;
    return promptTokens;
  }

  /** Run the request to the end; a non-streamed abort rejects with ABORTED. */
  private async runExclusive(spec: RunSpec): Promise<GenerateResult> {
    const r = await this.run(spec);
    if (r.finishReason === 'abort')
      throw new EngineError('ABORTED', `The request was aborted after ${r.tokens.length} generated tokens.`, { completionTokens: r.tokens.length });
    return r;
  }

  /**
   * Start the request now (batched with others) and return its chunks as they are produced. The
   * last chunk carries the finish reason and usage; an abort ends the stream with finish_reason 'abort'.
   */
  private stream<C>(spec: RunSpec, make: { first?: () => C; text: (text: string) => C; last: (text: string, r: GenerateResult) => C }): AsyncIterable<C> {
    const local = new AbortController();
    const user = spec.params.signal;
    const onUserAbort = (): void => local.abort();
    if (user?.aborted) local.abort();
    else user?.addEventListener('abort', onUserAbort, { once: true });
    const queue = new ChunkStream<C>(() => local.abort());
    if (make.first) queue.push(make.first());
    let emitted = '';
    this.run({
      ...spec,
      params: { ...spec.params, signal: local.signal },
      onText: (text) => {
        emitted += text;
        queue.push(make.text(text));
      },
    })
      .then((r) => {
        // run() only emits a prefix of the final text; the rest (held back for stop strings, the
        // decoder's flush) goes in the last chunk.
        queue.push(make.last(r.text.startsWith(emitted) ? r.text.slice(emitted.length) : '', r));
        queue.end();
      })
      .catch((e: unknown) => queue.end(e))
      .finally(() => user?.removeEventListener('abort', onUserAbort));
    return queue;
  }

  /** The one place that drives generate(): parameter mapping, stop-string hold-back, unload's abort. */
  private async run(spec: RunSpec): Promise<GenerateResult> {
    const model = this.loaded;
    const p = spec.params;
    const stops = stopList(p.stop);
    const ctl = new AbortController();
    const user = p.signal;
    const onAbort = (): void => ctl.abort();
    if (user?.aborted) ctl.abort();
    else user?.addEventListener('abort', onAbort, { once: true });
    let text = '';
    let emittedLength = 0;
    let pending: number[] = [];
    const job = generate(model, {
      promptTokens: spec.promptTokens,
      maxTokens: spec.maxTokens,
      temperature: nullable(p.temperature) ?? 1,
      topP: nullable(p.top_p) ?? 1,
      topK: nullable(p.top_k) ?? 0,
      seed: nullable(p.seed),
      logprobs: Math.max(0, spec.topLogprobs),
      stop: stops,
      signal: ctl.signal,
      ...(speculativeOf(p, this.speculative) ?? {}),
      onToken: spec.onText
        ? (token, piece) => {
            text += piece;
            pending.push(token);
            const hit = stops.map((s) => text.indexOf(s)).filter((ix) => ix >= 0);
            const safeEnd = hit.length > 0 ? Math.min(...hit) : text.length - heldBackLength(text, stops);
            if (safeEnd > emittedLength) {
              spec.onText?.(text.slice(emittedLength, safeEnd), pending);
              emittedLength = safeEnd;
              pending = [];
            }
          }
        : undefined,
    });
    this.inFlight.set(job, ctl);
    try {
      return await job;
    } finally {
      this.inFlight.delete(job);
      user?.removeEventListener('abort', onAbort);
    }
  }

  private tokenLogprobs(r: GenerateResult, from: number, to: number, top: number): ChatCompletionTokenLogprob[] {
    const tok = this.loaded.tokenizer;
    const out: ChatCompletionTokenLogprob[] = [];
    for (let i = from; i < to; i++) {
      const id = r.tokens[i]!;
      const list = r.logprobs[i] ?? [];
      out.push({
        ...tokenEntry(tok, id, r.tokenLogprobs[i]!),
        top_logprobs: list.slice(0, top).map((e) => tokenEntry(tok, e.token, e.logprob)),
      });
    }
    return out;
  }

  private completionLogprobs(r: GenerateResult, top: number): CompletionLogprobs {
    const tok = this.loaded.tokenizer;
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    let offset = 0;
    r.tokens.forEach((id, i) => {
      const list = r.logprobs[i] ?? [];
      const text = tokenString(tok, id);
      out.tokens.push(text);
      out.token_logprobs.push(r.tokenLogprobs[i]!);
      out.top_logprobs.push(Object.fromEntries(list.slice(0, top).map((e) => [tokenString(tok, e.token), e.logprob])));
      out.text_offset.push(offset);
      offset += text.length;
    });
    return out;
  }
}

function tokenString(tok: Tokenizer, id: number): string {
  return new TextDecoder('utf-8').decode(tok.tokenBytes(id));
}

function tokenEntry(tok: Tokenizer, id: number, logprob: number): { token: string; logprob: number; bytes: number[] } {
  const bytes = tok.tokenBytes(id);
  return { token: new TextDecoder('utf-8').decode(bytes), logprob, bytes: Array.from(bytes) };
}

function notAborted(r: GenerateResult): Exclude<FinishReason, 'abort'> {
  if (r.finishReason === 'abort') throw new EngineError('ABORTED', 'The request was aborted.');
  return r.finishReason;
}

function usage(r: GenerateResult): CompletionUsage {
  return {
    prompt_tokens: r.promptTokens.length,
    completion_tokens: r.tokens.length,
    total_tokens: r.promptTokens.length + r.tokens.length,
    prompt_tokens_details: { cached_tokens: r.cachedTokens },
  };
}

/** The request's speculative setting, else the engine's (null in the request turns it off); generate() checks it. */
function speculativeOf(p: SamplingRequestParams, engineDefault: SpeculativeOptions | null): { speculative: SpeculativeOptions } | null {
  const s = p.speculative === undefined ? engineDefault : p.speculative;
  return s ? { speculative: s } : null;
}

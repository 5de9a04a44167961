// OpenAI-shaped request and response types for chat.completions and completions, plain data only.
// To add a field, mirror OpenAI's name and shape (snake_case) and document hearth-only extensions here.

/** A system message; hearth sends it through the model's chat template like OpenAI's `system` role. */
export interface ChatCompletionSystemMessageParam {
  role: 'system';
  content: string;
  name?: string;
}

/** A user message. Only string content is supported (no image or audio parts). */
export interface ChatCompletionUserMessageParam {
  role: 'user';
  content: string;
  name?: string;
}

/** A previous assistant turn. */
export interface ChatCompletionAssistantMessageParam {
  role: 'assistant';
  content: string;
  name?: string;
}

/** The messages hearth accepts: system, user and assistant turns with string content. */
export type ChatCompletionMessageParam = ChatCompletionSystemMessageParam | ChatCompletionUserMessageParam | ChatCompletionAssistantMessageParam;

/**
 * Why generation ended.
 * - `stop`: the model produced an end-of-generation token or a `stop` string (which is cut off).
 * - `length`: `max_tokens` / `max_completion_tokens` or the context window was reached.
 * - `abort`: hearth's extension to OpenAI's set. The request's `signal` was aborted; only a streamed
 *   response reports it (on its last chunk), a non-streamed one rejects with `EngineError('ABORTED')`.
 */
export type FinishReason = 'stop' | 'length' | 'abort';

/** Sampling and control fields shared by chat and text completions. */
export interface SamplingRequestParams {
  /** Echoed back in the response's `model`; defaults to the engine's model name. */
  model?: string;
  /** Upper bound on generated tokens (default: the rest of the context window). */
  max_tokens?: number | null;
  /** Default 1 (as OpenAI); 0 means greedy decoding. */
  temperature?: number | null;
  /** Nucleus sampling mass, default 1 (off). */
  top_p?: number | null;
  /** hearth's extension: keep the k most likely tokens, default 0 (off). */
  top_k?: number | null;
  /** Seed of the sampler; the same seed and request give the same output. */
  seed?: number | null;
  /** One or more strings; generation ends before the first one that appears (finish_reason `stop`). */
  stop?: string | string[] | null;
  /** hearth's extension: abort the request. See {@link FinishReason} for how an abort is reported. */
  signal?: AbortSignal;
  /**
   * hearth's extension: speculative decoding. `draft`: 'ngram' (prompt lookup), 'self:N' (the
   * model's own first N blocks) or 'model' (the draft model loaded with the engine); `tree`: { width, depth } (default a chain of 4); `method`: the
   * verifier for sampled requests, 'spechub' (width 2), 'rrs' or 'rrs-wo' (lossless: the output is
   * distributed as plain sampling; top_k / top_p requests decode plainly), or 'greedy'
   * (temperature 0 only). Greedy requests give exactly the plain greedy output. Default: the
   * engine's `speculative` option; null turns it off.
   */
  speculative?: {
    draft: 'ngram' | `self:${number}` | 'model';
    tree?: { width?: number; depth?: number };
    depth?: number;
    method?: 'spechub' | 'rrs' | 'rrs-wo' | 'greedy';
    draftTemperature?: number;
    ngram?: number;
  } | null;
}

/** hearth's extension: answer from the engine's semantic cache (src/cache/semantic-cache.ts). */
export interface SemanticCacheRequest {
  /**
   * Look the last user message up among earlier questions asked under the same model, the same
   * earlier messages (system prompt and turns) and the same sampling settings; on a miss, store the
   * finished answer. Default: the engine's `semanticCacheByDefault`.
   */
  semantic?: boolean;
  /** Let a sampled request (temperature > 0) take a stored answer (default false: only greedy requests hit). */
  allowSampled?: boolean;
}

/** hearth's extension on responses: where the answer came from. */
export interface HearthResponseInfo {
  /** Present when the request used the semantic cache: a hit (with the stored query's cosine similarity) or a miss. */
  cache?: { hit: boolean; similarity?: number };
}

/** `chat.completions.create()` parameters. */
export interface ChatCompletionCreateParamsBase extends SamplingRequestParams {
  messages: ChatCompletionMessageParam[];
  /** hearth's extension: the semantic cache, see {@link SemanticCacheRequest}. */
  cache?: SemanticCacheRequest | null;
  stream?: boolean | null;
  /** Preferred name of `max_tokens` (OpenAI); wins when both are set. */
  max_completion_tokens?: number | null;
  /** Report the sampled token's log-probability per token. */
  logprobs?: boolean | null;
  /** With `logprobs`, how many most likely alternatives to report per token (0..32). */
  top_logprobs?: number | null;
}
export interface ChatCompletionCreateParamsNonStreaming extends ChatCompletionCreateParamsBase {
  stream?: false | null;
}
export interface ChatCompletionCreateParamsStreaming extends ChatCompletionCreateParamsBase {
  stream: true;
}
export type ChatCompletionCreateParams = ChatCompletionCreateParamsNonStreaming | ChatCompletionCreateParamsStreaming;

/** One of the most likely tokens at a position. */
export interface TopLogprob {
  token: string;
  logprob: number;
  /** The token's UTF-8 bytes (a token can hold part of a character). */
  bytes: number[] | null;
}

/** The sampled token at one position, with its log-probability and the top alternatives. */
export interface ChatCompletionTokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  /** Always null: hearth has no refusals (kept for OpenAI's shape). */
  refusal: null;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** As OpenAI reports prompt caching: prompt tokens whose KV came from the prefix cache (full KV blocks an earlier request computed). */
  prompt_tokens_details?: { cached_tokens: number };
}

/** The assistant message of a non-streamed chat completion. */
export interface ChatCompletionMessage {
  role: 'assistant';
  content: string;
  /** Always null (kept for OpenAI's shape). */
  refusal: null;
}

/**
 * A non-streamed chat completion. Its `finish_reason` is never `abort`: an aborted non-streamed
 * request rejects with `EngineError('ABORTED')` instead, which keeps this type assignable to OpenAI's.
 */
export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  /** Unix time in seconds. */
  created: number;
  model: string;
  choices: {
    index: number;
    message: ChatCompletionMessage;
    finish_reason: Exclude<FinishReason, 'abort'>;
    logprobs: ChatCompletionLogprobs | null;
  }[];
  usage: CompletionUsage;
  /** hearth's extension: set when the request used the semantic cache. */
  hearth?: HearthResponseInfo;
}

/**
 * One streamed piece of a chat completion. The first chunk carries `delta.role`, the middle ones
 * `delta.content` as tokens are produced, and the last one `finish_reason` (possibly `abort`) and `usage`.
 * With `logprobs`, hearth puts the whole response's token logprobs on the last chunk (OpenAI spreads
 * them over the chunks).
 */
export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string };
    finish_reason: FinishReason | null;
    logprobs?: ChatCompletionLogprobs | null;
  }[];
  /** Only on the last chunk. */
  usage?: CompletionUsage;
  /** hearth's extension, when the request used the semantic cache: on every chunk of a hit, on the last chunk of a miss. */
  hearth?: HearthResponseInfo;
}

/** `completions.create()` parameters: a raw prompt, no chat template. */
export interface CompletionCreateParamsBase extends SamplingRequestParams {
  /** Tokenized with the model's BOS rule; special tokens written in the text are recognized. */
  prompt: string;
  stream?: boolean | null;
  /** Number of top alternatives to report per token (0..32), as OpenAI's legacy completions API. */
  logprobs?: number | null;
}
export interface CompletionCreateParamsNonStreaming extends CompletionCreateParamsBase {
  stream?: false | null;
}
export interface CompletionCreateParamsStreaming extends CompletionCreateParamsBase {
  stream: true;
}
export type CompletionCreateParams = CompletionCreateParamsNonStreaming | CompletionCreateParamsStreaming;

/** Legacy completions' per-token log-probabilities. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** A non-streamed text completion; as for chat, `finish_reason` is never `abort` here. */
export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: number; text: string; finish_reason: Exclude<FinishReason, 'abort'>; logprobs: CompletionLogprobs | null }[];
  usage: CompletionUsage;
}

/** One streamed piece of a text completion (OpenAI uses the same `object` for both). */
export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: number; text: string; finish_reason: FinishReason | null; logprobs: CompletionLogprobs | null }[];
  /** Only on the last chunk. */
  usage?: CompletionUsage;
}

// The Engine interface: the OpenAI-shaped surface every hearth engine (local, worker client) offers.
// To add an endpoint, add it here with OpenAI's name and shape, then implement it in each engine.

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
} from './types.js';

/** `engine.chat.completions`: chat messages through the model's chat template. */
export interface ChatCompletions {
  create(params: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParamsStreaming): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
}

/** `engine.completions`: a raw prompt, no template. */
export interface Completions {
  create(params: CompletionCreateParamsNonStreaming): Promise<Completion>;
  create(params: CompletionCreateParamsStreaming): Promise<AsyncIterable<CompletionChunk>>;
  create(params: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>>;
}

/**
 * An engine with a loaded model, shaped like OpenAI's client so code written for it runs locally:
 * `for await (const c of await engine.chat.completions.create({ messages, stream: true }))`.
 * Requests run one at a time in arrival order.
 */
export interface Engine {
  readonly chat: { readonly completions: ChatCompletions };
  readonly completions: Completions;
  /** Wait for running requests, then free the model's GPU memory; later requests fail with NOT_LOADED. */
  unload(): Promise<void>;
}

// Chat prompt rendering: a model's Jinja `tokenizer.chat_template` (via @huggingface/jinja) or the ChatML fallback.
// To support more template features, add variables to the render context in renderChatTemplate.

import { Template } from '@huggingface/jinja';
import { EngineError } from '../api/errors.js';
import type { Tokenizer } from './tokenizer.js';

/** A chat turn as the template sees it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface RenderOptions {
  /** Text of the BOS token, bound to `bos_token` (e.g. '<s>'); '' when the vocabulary has none. */
  bosToken: string;
  /** Text of the EOS token, bound to `eos_token`. */
  eosToken: string;
  /** End with the assistant header so the model answers (default true). */
  addGenerationPrompt?: boolean;
}

/**
 * The format used when a model has no `tokenizer.chat_template`: ChatML, as llama.cpp falls back
 * to. Each message becomes `<|im_start|>{role}\n{content}<|im_end|>\n`, and the generation prompt is
 * `<|im_start|>assistant\n`. On a vocabulary without those special tokens they are plain text.
 *
 * @example
 * renderChatTemplate(null, [{ role: 'user', content: 'Hi' }], { bosToken: '<s>', eosToken: '</s>' })
 * // '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
 */
export function renderChatML(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
  let out = '';
  for (const m of messages) out += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
  if (addGenerationPrompt) out += '<|im_start|>assistant\n';
  return out;
}

function validate(messages: readonly ChatMessage[]): void {
  if (messages.length === 0) throw new EngineError('BAD_REQUEST', 'messages is empty; send at least one message.');
  messages.forEach((m, i) => {
    if (m.role !== 'system' && m.role !== 'user' && m.role !== 'assistant')
      throw new EngineError('BAD_REQUEST', `messages[${i}].role is '${String(m.role)}'; hearth supports 'system', 'user' and 'assistant'.`, { index: i });
    if (typeof m.content !== 'string')
      throw new EngineError('BAD_REQUEST', `messages[${i}].content must be a string (content parts are not supported).`, { index: i });
  });
}

/**
 * Render chat messages into a prompt string with a model's Jinja chat template, or with
 * {@link renderChatML} when `template` is null. The template sees `messages`, `bos_token`,
 * `eos_token` and `add_generation_prompt`; a `raise_exception('...')` in the template (Hugging Face
 * templates use it for e.g. non-alternating roles) rejects the request with BAD_REQUEST. A template
 * that fails to parse or render otherwise is BAD_MODEL_FILE with the template engine's message.
 *
 * @example
 * const t = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
 * renderChatTemplate(t, [{ role: 'user', content: 'Hi' }], { bosToken: '', eosToken: '<|im_end|>' })
 * // '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
 */
export function renderChatTemplate(template: string | null, messages: readonly ChatMessage[], opts: RenderOptions): string {
  validate(messages);
  const addGenerationPrompt = opts.addGenerationPrompt ?? true;
  if (template === null) return renderChatML(messages, addGenerationPrompt);
  let parsed: Template;
  try {
    parsed = new Template(template);
  } catch (e) {
    throw new EngineError('BAD_MODEL_FILE', `The model's tokenizer.chat_template does not parse: ${message(e)}`);
  }
  try {
    return parsed.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      bos_token: opts.bosToken,
      eos_token: opts.eosToken,
      add_generation_prompt: addGenerationPrompt,
    });
  } catch (e) {
    const msg = message(e);
    if (raisedMessages(template).has(msg)) throw new EngineError('BAD_REQUEST', `The model's chat template rejected the messages: ${msg}`);
    throw new EngineError('BAD_MODEL_FILE', `The model's tokenizer.chat_template failed to render: ${msg}`);
  }
}

/**
 * The string literals a template passes to raise_exception(). @huggingface/jinja's built-in
 * raise_exception throws a plain Error with that text (and cannot be replaced), so matching the
 * text is how a deliberate rejection of the messages is told apart from a broken template.
 */
function raisedMessages(template: string): Set<string> {
  const out = new Set<string>();
  for (const m of template.matchAll(/raise_exception\(\s*(?:'([^']*)'|"([^"]*)")\s*\)/g)) out.add(m[1] ?? m[2] ?? '');
  return out;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The texts bound to `bos_token` / `eos_token` for a tokenizer ('' when it has no such token). */
export function specialTokenTexts(tokenizer: Tokenizer): { bosToken: string; eosToken: string } {
  return {
    bosToken: tokenizer.bosId === null ? '' : tokenizer.tokenText(tokenizer.bosId),
    eosToken: tokenizer.eosId === null ? '' : tokenizer.tokenText(tokenizer.eosId),
  };
}

/**
 * Tokenize a rendered chat prompt: special tokens are parsed, and BOS is added by the tokenizer's
 * rule unless the template already wrote it (templates like Llama 3's start with `{{ bos_token }}`;
 * adding another would give the model a double BOS, which llama.cpp warns about).
 */
export function encodeChatPrompt(tokenizer: Tokenizer, prompt: string): number[] {
  const { bosToken } = specialTokenTexts(tokenizer);
  const templateHasBos = bosToken !== '' && prompt.startsWith(bosToken);
  return tokenizer.encode(prompt, { addBos: tokenizer.addBos && !templateHasBos, parseSpecial: true });
}

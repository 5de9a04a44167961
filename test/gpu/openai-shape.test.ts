// Code written against the `openai` package's types runs on a hearth LocalEngine: the type-level
// checks (tsc) are the point, the runs confirm the values. Add a snippet per OpenAI call hearth supports.

import type OpenAI from 'openai';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { fileSource } from '../../src/model/file-source-node.js';
import { fixturePath } from '../fixtures/models.js';
import { gpu } from './helpers.js';

// `satisfies` keeps the literal roles, so the same array also fits hearth's narrower message type.
const messages = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Say hi.' },
] satisfies OpenAI.Chat.ChatCompletionMessageParam[];

/** Written for OpenAI's client, unchanged. */
async function ask(client: Pick<OpenAI, 'chat'>): Promise<string | null> {
  const r = await client.chat.completions.create({ model: 'x', messages, max_tokens: 8, temperature: 0 });
  return r.choices[0]!.message.content;
}

/** The streaming variant, also written for OpenAI's client. */
async function askStreaming(client: Pick<OpenAI, 'chat'>): Promise<string> {
  const stream = await client.chat.completions.create({ model: 'x', messages, max_tokens: 8, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

/**
 * The part of OpenAI's chat client that ask() and askStreaming() use, spelled with OpenAI's own types.
 * `Pick<OpenAI, 'chat'>` itself cannot be implemented structurally: its classes (APIResource with
 * a protected `_client`, APIPromise and Stream with private fields) compare nominally. The
 * non-streaming result is OpenAI's full ChatCompletion type; the streamed chunk is narrowed to
 * what is read, because hearth's chunks add finish_reason 'abort', which OpenAI's union lacks.
 */
interface OpenAIChatSubset {
  chat: {
    completions: {
      create(body: {
        model: string;
        messages: { role: 'system' | 'user'; content: string }[];
        max_tokens: number;
        temperature: number;
      }): PromiseLike<OpenAI.Chat.ChatCompletion>;
      create(body: {
        model: string;
        messages: { role: 'system' | 'user'; content: string }[];
        max_tokens: number;
        temperature: number;
        stream: true;
      }): PromiseLike<AsyncIterable<{ choices: { delta: { content?: string | null } }[] }>>;
    };
  };
}

/**
 * The one cast: bridges only the nominal parts named above. Its parameter type checks that the
 * engine really has the calls and result shapes OpenAIChatSubset spells out.
 */
function asOpenAIChat(engine: OpenAIChatSubset): Pick<OpenAI, 'chat'> {
  return engine as unknown as Pick<OpenAI, 'chat'>;
}

// Type-level: OpenAI's real client satisfies the subset too, so the subset is no wider than OpenAI.
export type OpenAISatisfiesSubset = Pick<OpenAI, 'chat'> extends OpenAIChatSubset ? true : never;
const openAISatisfiesSubset: OpenAISatisfiesSubset = true;

let engine: LocalEngine;
beforeAll(async () => {
  engine = await LocalEngine.load(await gpu(), await fileSource(fixturePath('qwen2-f32')), { maxContext: 64 });
});
afterAll(async () => {
  await engine.unload();
});

test('OpenAI-typed code runs on LocalEngine, streamed and not, with the same text', async () => {
  expect(openAISatisfiesSubset).toBe(true);
  const client = asOpenAIChat(engine);
  const text = await ask(client);
  expect(typeof text).toBe('string');
  expect(text!.length).toBeGreaterThan(0);
  expect(await askStreaming(client)).toBe(text);
});

test('the same snippet body type-checks against LocalEngine directly, with no cast', async () => {
  const r = await engine.chat.completions.create({ model: 'x', messages, max_tokens: 8, temperature: 0 });
  const asOpenAI: OpenAI.Chat.ChatCompletion = r;
  expect(asOpenAI.choices[0]!.message.content).toBe(await ask(asOpenAIChat(engine)));
});

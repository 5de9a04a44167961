// The CLI contract other tools rely on: with --json exactly one JSON object on stdout, logs on
// stderr, errors as {"error": {...}} with a non-zero exit.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { bufferSource } from '../../src/model/byte-source.js';
import { GGUFMeta, parseGGUF } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { fixturePath } from '../fixtures/models.js';

const run = promisify(execFile);

async function hearth(args: string[]): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  try {
    const r = await run(process.execPath, ['bin/hearth.js', ...args], { maxBuffer: 64 << 20 });
    return { code: 0, json: JSON.parse(r.stdout) as Record<string, unknown>, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, json: JSON.parse(err.stdout) as Record<string, unknown>, stderr: err.stderr };
  }
}

describe('hearth CLI', () => {
  const model = fixturePath('qwen2-f32');

  test('tokenize --json prints {"tokens": [...]} without BOS, equal to the library', async () => {
    const text = "Hello world, it's 2026! Ünïcödé 日本";
    const r = await hearth(['tokenize', '--model', model, '--text', text, '--json']);
    expect(r.code).toBe(0);
    const tok = Tokenizer.fromGGUF(new GGUFMeta((await parseGGUF(bufferSource(readFileSync(model)))).metadata));
    expect(r.json).toEqual({ tokens: tok.encode(text, { addBos: false }) });
  });

  test('generate --speculative gives the plain greedy tokens and reports its drafts; a GGUF path is a draft model; a bad setting is BAD_REQUEST', async () => {
    const base = ['generate', '--model', model, '--prompt', 'one two three one two three one two', '--max-tokens', '24', '--temperature', '0', '--json'];
    const plain = await hearth(base);
    for (const spec of ['{"draft":"ngram","depth":3}', `{"draft":${JSON.stringify(model)},"tree":{"width":2,"depth":2}}`, '{"draft":"self:1"}']) {
      const r = await hearth([...base, '--speculative', spec]);
      expect(r.code, spec).toBe(0);
      expect(r.json.tokens).toEqual(plain.json.tokens);
      expect(r.json.speculative).toMatchObject({ drafted_tokens: expect.any(Number), accepted_tokens: expect.any(Number) });
    }
    expect(plain.json.speculative).toBeUndefined();
    for (const bad of ['{"draft":"model"}', '{"draft":"draft"}', '{"draft":"ngram","method":"spechub"}', 'ngram']) {
      const r = await hearth([...base, '--speculative', bad]);
      expect(r.code, bad).toBe(1);
      expect(r.json, bad).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    }
    const missing = await hearth([...base, '--speculative', '{"draft":"no-such-draft.gguf"}']);
    expect(missing.code).toBe(1);
  });

  test('bench --speculative measures plain and speculative decoding through the serving loop', async () => {
    const r = await hearth(['bench', '--model', model, '--prompt-tokens', '16', '--decode-tokens', '12', '--speculative', '{"draft":"self:1"}', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.speculative).toMatchObject({ temperature: 0, identical: true, tokens_per_target_pass: expect.any(Number), speedup: expect.any(Number) });
  });

  test('generate --json follows the contract', async () => {
    const r = await hearth([
      'generate',
      '--model',
      model,
      '--prompt',
      'The old lighthouse',
      '--max-tokens',
      '6',
      '--temperature',
      '0',
      '--logprobs',
      '3',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const j = r.json as {
      prompt_tokens: number[];
      tokens: number[];
      text: string;
      logprobs: { token: number; logprob: number }[][];
      timings: Record<string, number>;
    };
    expect(j.prompt_tokens.length).toBeGreaterThan(0);
    expect(j.tokens.length).toBeGreaterThan(0);
    expect(typeof j.text).toBe('string');
    expect(j.logprobs).toHaveLength(j.tokens.length);
    j.logprobs.forEach((list, i) => {
      expect(list).toHaveLength(3);
      expect(list[0]!.token).toBe(j.tokens[i]); // greedy: the chosen token is the best
      expect(list[0]!.logprob).toBeGreaterThanOrEqual(list[1]!.logprob);
      expect(list[1]!.logprob).toBeGreaterThanOrEqual(list[2]!.logprob);
      expect(list[0]!.logprob).toBeLessThanOrEqual(0);
    });
    expect(Object.keys(j.timings).sort()).toEqual(['decode_tokens_per_s', 'load_ms', 'prefill_tokens_per_s']);
    expect(r.stderr).toMatch(/adapter/);
  });

  test('seeded sampling is reproducible and logprobs are absent unless asked', async () => {
    const args = [
      'generate',
      '--model',
      model,
      '--prompt',
      'The keeper',
      '--max-tokens',
      '8',
      '--temperature',
      '1',
      '--top-k',
      '20',
      '--top-p',
      '0.9',
      '--seed',
      '42',
      '--json',
    ];
    const [a, b] = await Promise.all([hearth(args), hearth(args)]);
    expect(a.json.tokens).toEqual(b.json.tokens);
    expect(a.json).not.toHaveProperty('logprobs');
  });

  test('chat --json prints one OpenAI-shaped ChatCompletion from the Engine API', async () => {
    const r = await hearth(['chat', '--model', model, '--message', 'Hello there', '--max-tokens', '5', '--temperature', '0', '--json']);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant' } }] });
    const usage = r.json.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
  });

  test('a bad model file is one JSON error object and exit code 1', async () => {
    const r = await hearth(['generate', '--model', 'package.json', '--prompt', 'x', '--json']);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ error: { code: 'BAD_MODEL_FILE' } });
    expect(r.stderr).toMatch(/BAD_MODEL_FILE/);
  });
});

// Request validation of sampling settings: defaults, and BAD_REQUEST with the number for bad values.

import { describe, expect, test } from 'vitest';
import { samplingParams } from '../../src/engine/generate.js';

describe('samplingParams', () => {
  test('defaults follow llama.cpp (temperature 0.8, top-k 40, top-p 0.95), logprobs off', () => {
    expect(samplingParams({ seed: 1 })).toEqual({ temperature: 0.8, topK: 40, topP: 0.95, seed: 1, logprobs: 0 });
  });
  test.each([
    [{ temperature: -1 }, 'temperature'],
    [{ temperature: Number.NaN }, 'temperature'],
    [{ topK: 2.5 }, 'top_k'],
    [{ topP: 0 }, 'top_p'],
    [{ topP: 1.5 }, 'top_p'],
    [{ seed: -3 }, 'seed'],
    [{ logprobs: 33 }, 'logprobs'],
  ])('%o is BAD_REQUEST naming %s', (req, what) => {
    expect(() => samplingParams(req)).toThrowError(
      expect.objectContaining({ code: 'BAD_REQUEST', details: expect.objectContaining({ [what]: expect.anything() as unknown }) as unknown }),
    );
  });
});

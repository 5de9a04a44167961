// The lexical embedder at its default threshold: repeats that differ in case, punctuation, typos and filler
// hit; near-misses that share words but mean something else do not. Also the transformers.js adapter.

import { describe, expect, it } from 'vitest';
import { LexicalEmbedder, lexicalTokens, skeleton } from '../../src/cache/lexical.js';
import { transformersEmbedder, type FeatureExtractionPipeline } from '../../src/cache/embedder.js';
import { defaultThreshold } from '../../src/cache/semantic-cache.js';
import { EngineError } from '../../src/api/errors.js';

const e = new LexicalEmbedder();
const tau = defaultThreshold(e.id)!;
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const sim = (a: string, b: string) => dot(e.embedOne(a), e.embedOne(b));

// [kind, stored query, later query]
const POSITIVE: [string, string, string][] = [
  ['case', 'How do I reset my password?', 'HOW DO I RESET MY PASSWORD'],
  ['punctuation', 'Where is my order?!', 'where is my order'],
  ['contraction', "What's the refund policy?", 'what is the refund policy'],
  ['negation contraction', "I don't have an account", 'I do not have an account'],
  ['width (NFKC)', 'ｒｅｓｅｔ　ｍｙ　ｐａｓｓｗｏｒｄ', 'reset my password'],
  ['typo: dropped letter', 'How do I reset my password?', 'how do i reset my pasword'],
  ['typo: transposition', 'cancel my order', 'cancle my order'],
  ['typo: consonant transposition', 'track my order', 'trakc my order'],
  ['typo: vowel', 'how do I change my email address', 'how do I change my emial address'],
  ['typo: doubled letter', 'what is the shipping cost to canada', 'what is the shiping cost to canada'],
  ['typo: ie', 'when will I receive a refund', 'when will I recieve a refund'],
  ['typo: long query', 'what time does the pharmacy on main street close on sundays', 'what time does the pharmacy on main stret close on sundays'],
  ['filler', 'reset my password', 'Hi, could you please reset my password? Thanks!'],
  ['filler', 'What are your opening hours?', 'hey, what are the opening hours please'],
  ['filler', 'cancel my subscription', 'I want to cancel my subscription please'],
  ['filler', 'how do I update my billing address', 'Hello! Can you tell me how do I update my billing address?'],
  ['texting', 'Do you ship to Germany?', 'do u ship to germany'],
  ['everything', 'How do I reset my password?', 'hi!! how do i reset my pasword pls'],
];

const NEGATIVE: [string, string, string][] = [
  ['other noun', 'how do I reset my password', 'how do I reset my router'],
  ['other verb', 'cancel my order', 'track my order'],
  ['other verb', 'how do I reset my password', 'how do I change my password'],
  ['other noun', 'what is the shipping cost to canada', 'what is the shipping cost to mexico'],
  ['other number', 'book a table for 2 people', 'book a table for 4 people'],
  ['other number', 'is the store open on december 24', 'is the store open on december 25'],
  ['other number', 'order 10 pizzas', 'order 100 pizzas'],
  ['negation', 'does the plan include taxes', 'does the plan not include taxes'],
  ['negation', 'why is my card working', "why isn't my card working"],
  ['direction', 'turn on the lights', 'turn off the lights'],
  ['other noun', 'what is the return policy', 'what is the privacy policy'],
  ['other noun', 'update my billing address', 'update my shipping address'],
  ['antonym', 'how do I add a payment method', 'how do I remove a payment method'],
  ['antonym', 'how do I upgrade my plan', 'how do I downgrade my plan'],
  ['wh-word', 'when does the store open', 'where does the store open'],
  ['word order', 'convert celsius to fahrenheit', 'convert fahrenheit to celsius'],
  ['long query, one noun', 'what time does the pharmacy on main street close on sundays', 'what time does the pharmacy on main street close on saturdays'],
  ['long query, one noun', 'how do i transfer money to another bank account', 'how do i transfer money to another credit card'],
  ['other noun', 'what is the weather in paris today', 'what is the weather in london today'],
];

describe('LexicalEmbedder at the default threshold', () => {
  it('has a calibrated default threshold', () => {
    expect(e.id).toBe('lexical-v1-d2048');
    expect(tau).toBe(0.8);
  });

  it.each(POSITIVE)('hits a repeat: %s (%j ~ %j)', (_kind, a, b) => {
    expect(sim(a, b)).toBeGreaterThanOrEqual(tau);
  });

  it.each(NEGATIVE)('misses a near-miss: %s (%j vs %j)', (_kind, a, b) => {
    expect(sim(a, b)).toBeLessThan(tau);
  });

  it('gives unit vectors, deterministically, and nothing in common to unrelated queries', async () => {
    const [a, b] = await e.embed(['How do I reset my password?', 'How do I reset my password?']);
    expect(dot(a!, a!)).toBeCloseTo(1, 5);
    expect([...a!]).toEqual([...b!]);
    expect([...new LexicalEmbedder().embedOne('track my order')]).toEqual([...e.embedOne('track my order')]);
    expect(sim('track my order', 'what is the weather in paris')).toBeLessThan(0.2);
  });

  it('normalizes text before hashing', () => {
    expect(lexicalTokens("Hi! Could you PLEASE tell me what's the ＲＥＦＵＮＤ policy?")).toEqual(['what', 'is', 'refund', 'policy']);
    expect(skeleton('password')).toBe(skeleton('pasword'));
    expect(skeleton('cancel')).toBe(skeleton('cancle'));
  });

  it('an empty or all-filler query is the zero vector (it matches nothing)', () => {
    expect(e.embedOne('please, thanks!').every((x) => x === 0)).toBe(true);
  });

  it('refuses a dimension that is not a power of two', () => {
    expect(() => new LexicalEmbedder({ dim: 1000 })).toThrow(EngineError);
  });
});

describe('transformersEmbedder', () => {
  // A fake feature-extraction pipeline: [n, 3] vectors, not normalized, recording its calls.
  function fake(dim = 3) {
    const calls: { texts: string[]; options: unknown }[] = [];
    const pipe: FeatureExtractionPipeline = (texts, options) => {
      calls.push({ texts, options });
      const data = new Float32Array(texts.length * dim);
      texts.forEach((t, i) => {
        for (let j = 0; j < dim; j++) data[i * dim + j] = t.length + j;
      });
      return Promise.resolve({ data, dims: [texts.length, dim] });
    };
    return { pipe, calls };
  }

  it('reads the dimension, calls the pipeline with mean pooling and normalize, returns unit vectors', async () => {
    const { pipe, calls } = fake();
    const emb = await transformersEmbedder(pipe, 'xenova:test-model');
    expect(emb.id).toBe('xenova:test-model');
    expect(emb.dim).toBe(3);
    const vecs = await emb.embed(['ab', 'abcd']);
    expect(calls.at(-1)).toEqual({ texts: ['ab', 'abcd'], options: { pooling: 'mean', normalize: true } });
    expect(vecs).toHaveLength(2);
    const n = Math.hypot(2, 3, 4);
    expect([...vecs[0]!].map((x) => +x.toFixed(6))).toEqual([2 / n, 3 / n, 4 / n].map((x) => +x.toFixed(6)));
    expect(dot(vecs[1]!, vecs[1]!)).toBeCloseTo(1, 6);
  });

  it('rejects output of the wrong shape or with NaN', async () => {
    const { pipe } = fake();
    const emb = await transformersEmbedder(pipe, 'x');
    const bad = await transformersEmbedder((texts) => Promise.resolve({ data: new Float32Array(texts.length * 3), dims: [texts.length, 3] }), 'y');
    expect(emb.dim).toBe(bad.dim);
    const wrongDims: FeatureExtractionPipeline = (texts) => Promise.resolve({ data: new Float32Array(texts.length * 4), dims: [texts.length, 4] });
    let calls = 0;
    const shifting: FeatureExtractionPipeline = (texts, o) => (calls++ === 0 ? pipe(texts, o) : wrongDims(texts, o));
    await expect((await transformersEmbedder(shifting, 'z')).embed(['a'])).rejects.toThrow(/dims \[1, 4\]/);
    const nan: FeatureExtractionPipeline = (texts) => Promise.resolve({ data: new Float32Array(texts.length * 3).fill(NaN), dims: [texts.length, 3] });
    await expect(transformersEmbedder(nan, 'n')).rejects.toThrow(EngineError);
  });
});

// The BERT embedder against llama.cpp's embeddings (node-llama-cpp's embedding context, in a child process) on the
// generated fixtures, F32, F16 and Q8_0: cosine >= 0.999 per sentence, and the same tokens. llama.cpp pools as the
// file's bert.pooling_type says (mean here); its vectors are not normalized, so cosine is the measure.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmbeddingModel, type EmbeddingModel } from '../../src/model/bert.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { BERT_FIXTURES, bertFixturePath, EMBED_SENTENCES } from '../fixtures/bert.js';
import { CORPUS } from '../fixtures/vocab.js';
import { gpu } from '../gpu/helpers.js';
import { runLlamaChild } from './llama-cpp.js';
import { cosine, RefBert } from './ref-bert.js';

/** The test sentences plus longer corpus passages (up to ~40 tokens); llama.cpp returns nothing for '', so it is left out. */
const TEXTS = [...EMBED_SENTENCES.filter((s) => s !== ''), CORPUS.slice(0, 160), CORPUS.slice(800, 960), 'Numbers: 3.14, 2024-05-17, $19.99, 100%.'];

// The bar. llama.cpp differs from exact math by its f16 GELU table (and, for Q8_0, by quantizing the
// activations inside its matmuls): see the measured values printed by this test and in the commit message.
const MIN_COS_LLAMA = 0.999;

async function llamaEmbeddings(jobs: { modelPath: string; texts: string[] }[]): Promise<{ vectors: number[][]; tokens: number[][] }[]> {
  return runLlamaChild('./llama-embed-cli.ts', jobs, 'llama.cpp embedding oracle');
}

const specs = Object.values(BERT_FIXTURES);
let oracle: { vectors: number[][]; tokens: number[][] }[];

beforeAll(async () => {
  oracle = await llamaEmbeddings(specs.map((s) => ({ modelPath: bertFixturePath(s), texts: TEXTS })));
}, 300_000);

describe.each(specs.map((s, i) => ({ ...s, i })))('bert embeddings vs llama.cpp: $name', (spec) => {
  let model: EmbeddingModel;
  let ref: RefBert;
  beforeAll(async () => {
    model = await loadEmbeddingModel(await gpu(), bufferSource(readFileSync(bertFixturePath(spec))));
    ref = await RefBert.load(bertFixturePath(spec));
  });
  afterAll(() => model.destroy());

  it('tokenizes every text as llama.cpp does', () => {
    const { tokens } = oracle[spec.i]!;
    TEXTS.forEach((t, j) => expect(model.tokenizer.encode(t, { parseSpecial: false }), JSON.stringify(t)).toEqual(tokens[j]));
  });

  it(`agrees with llama.cpp to cosine >= ${MIN_COS_LLAMA} on ${TEXTS.length} texts`, async () => {
    const { vectors } = oracle[spec.i]!;
    const got = await model.embed(TEXTS);
    const cos = TEXTS.map((_, j) => cosine(got[j]!, vectors[j]!));
    const cosRef = TEXTS.map((t, j) => cosine(vectors[j]!, ref.embed(model.tokenize(t))));
    console.log(
      `${spec.name}: hearth vs llama.cpp min cosine ${Math.min(...cos).toFixed(6)} (1 - cos max ${(1 - Math.min(...cos)).toExponential(2)}); ` +
        `llama.cpp vs float64 reference min ${Math.min(...cosRef).toFixed(6)}`,
    );
    expect(vectors.every((v) => v.length === spec.dModel)).toBe(true);
    for (let j = 0; j < TEXTS.length; j++) expect(cos[j], JSON.stringify(TEXTS[j])).toBeGreaterThanOrEqual(MIN_COS_LLAMA);
    // The oracle is discriminating: two different texts are further apart than hearth is from llama.cpp.
    expect(cosine(vectors[0]!, vectors[2]!)).toBeLessThan(Math.min(...cos));
  });
});

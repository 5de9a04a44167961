// The BERT embedder (src/model/bert.ts) on the GPU against the float64 reference encoder (test/oracle/ref-bert.ts)
// on the generated fixtures, plus its contract: normalization, order, truncation, errors. llama.cpp: test/oracle/bert.test.ts.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { loadEmbeddingModel, type EmbeddingModel, type Embedder } from '../../src/model/bert.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { f32, u32 } from '../fixtures/gguf-writer.js';
import { BERT_FIXTURES, bertFixturePath, buildBertFixture, EMBED_SENTENCES as SENTENCES, type BertFixtureSpec } from '../fixtures/bert.js';
import { cosine, RefBert } from '../oracle/ref-bert.js';
import { gpu } from './helpers.js';

// Against the exact reference (same dequantized weights, float64), the f32 kernels differ by rounding only:
// measured 1 - cosine <= 6e-14 on SwiftShader for every fixture; 1e-9 leaves room for other devices' exp/tanh.
const MIN_COS_REF = 1 - 1e-9;

async function load(spec: BertFixtureSpec, opts = {}): Promise<EmbeddingModel> {
  return loadEmbeddingModel(await gpu(), bufferSource(readFileSync(bertFixturePath(spec))), opts);
}

describe.each(Object.values(BERT_FIXTURES))('bert embedder vs float64 reference: $name', (spec) => {
  let model: EmbeddingModel;
  let ref: RefBert;
  beforeAll(async () => {
    model = await load(spec);
    ref = await RefBert.load(bertFixturePath(spec));
  });
  afterAll(() => model.destroy());

  it('embeds every sentence like the reference, unit length, in order', async () => {
    const got = await model.embed(SENTENCES);
    expect(got.length).toBe(SENTENCES.length);
    const cos = SENTENCES.map((s, i) => cosine(got[i]!, ref.embed(model.tokenize(s))));
    for (const c of cos) expect(c).toBeGreaterThanOrEqual(MIN_COS_REF);
    for (const v of got) {
      expect(v.length).toBe(spec.dModel);
      expect(Math.abs(Math.hypot(...v) - 1)).toBeLessThan(1e-5);
    }
    // Different texts give different vectors: the model is not returning one constant.
    expect(cosine(got[0]!, got[2]!)).toBeLessThan(0.999);
  });

  it('gives the same vector for a text alone and inside a batch', async () => {
    const [alone] = await model.embed([SENTENCES[2]!]);
    const batch = await model.embed(SENTENCES);
    expect(Array.from(batch[2]!)).toEqual(Array.from(alone!));
  });
});

describe('bert embedder contract', () => {
  it('a read that fails while the weights load frees what was allocated and leaves no error scope open', async () => {
    const ctx = await gpu();
    const bytes = readFileSync(bertFixturePath(BERT_FIXTURES['bert-f32']));
    const src = bufferSource(bytes);
    // The header parses; a read past the first third of the file (tensor data) fails like a lost file would.
    const failing = {
      size: src.size,
      read: (offset: number, length: number) => (offset > bytes.length / 3 ? Promise.reject(new Error('the file went away')) : src.read(offset, length)),
    };
    await expect(loadEmbeddingModel(ctx, failing)).rejects.toThrow(/the file went away/);
    await expect(ctx.device.popErrorScope()).rejects.toThrow();
  });

  it('satisfies the Embedder interface, with an id that names the file', async () => {
    const m = await load(BERT_FIXTURES['bert-f32']);
    const e: Embedder = m;
    expect(e.dim).toBe(128);
    expect(e.id).toMatch(/^model:hearth fixture bert-f32#[0-9a-f]{8}$/);
    const other = await load(BERT_FIXTURES['bert-q8_0']);
    expect(other.id).not.toBe(e.id);
    expect(await e.embed([])).toEqual([]);
    m.destroy();
    other.destroy();
    await expect(m.embed(['x'])).rejects.toMatchObject({ code: 'NOT_LOADED' });
  });

  it('truncates a text past maxTokens to its first tokens plus [SEP], and counts it', async () => {
    const m = await load(BERT_FIXTURES['bert-f32'], { maxTokens: 16 });
    const ref = await RefBert.load(bertFixturePath('bert-f32'));
    const long = 'the keeper and the baker and the teacher '.repeat(6);
    const ids = m.tokenize(long);
    expect(ids.length).toBe(16);
    expect(ids[0]).toBe(m.tokenizer.bosId);
    expect(ids[15]).toBe(m.tokenizer.sepId);
    expect(ids.slice(0, 15)).toEqual(m.tokenizer.encode(long, { addBos: true, parseSpecial: false }).slice(0, 15));
    const [v] = await m.embed([long]);
    expect(cosine(v!, ref.embed(ids))).toBeGreaterThanOrEqual(MIN_COS_REF);
    expect(m.truncatedTexts).toBe(1);
    m.destroy();
  });

  it('refuses a text past maxTokens with BAD_REQUEST when truncate is false', async () => {
    const m = await load(BERT_FIXTURES['bert-f32'], { maxTokens: 8, truncate: false });
    const err = await m.embed(['short', 'this text is certainly longer than eight tokens in all']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('BAD_REQUEST');
    expect((err as EngineError).details).toMatchObject({ index: 1, maxTokens: 8 });
    m.destroy();
  });

  it('runs concurrent embed() calls one after another with correct results', async () => {
    const m = await load(BERT_FIXTURES['bert-f16']);
    const [a, b] = await Promise.all([m.embed([SENTENCES[0]!]), m.embed([SENTENCES[3]!])]);
    const [a2, b2] = await m.embed([SENTENCES[0]!, SENTENCES[3]!]);
    expect(Array.from(a![0]!)).toEqual(Array.from(a2!));
    expect(Array.from(b![0]!)).toEqual(Array.from(b2!));
    m.destroy();
  });

  const base = BERT_FIXTURES['bert-f32'];
  const bad: [string, Partial<BertFixtureSpec>, string][] = [
    ['a llama file', { metaOverride: { 'general.architecture': 'llama' } }, 'UNSUPPORTED_ARCHITECTURE'],
    ['a missing tensor', { dropTensors: ['blk.1.ffn_up.bias'] }, 'BAD_MODEL_FILE'],
    ['a missing hyperparameter', { metaOverride: { 'bert.embedding_length': null } }, 'BAD_MODEL_FILE'],
    ['a wrong width', { metaOverride: { 'bert.embedding_length': u32(64) } }, 'BAD_MODEL_FILE'],
    ['pooling none', { metaOverride: { 'bert.pooling_type': u32(0) } }, 'UNSUPPORTED_ARCHITECTURE'],
    ['causal attention', { metaOverride: { 'bert.attention.causal': true } }, 'UNSUPPORTED_ARCHITECTURE'],
    ['an SPM vocabulary', { metaOverride: { 'tokenizer.ggml.model': 'llama' } }, 'BAD_MODEL_FILE'],
    ['a negative epsilon', { metaOverride: { 'bert.attention.layer_norm_epsilon': f32(-1) } }, 'BAD_MODEL_FILE'],
  ];
  it.each(bad)('refuses %s with %s', async (_, over, code) => {
    const bytes = buildBertFixture({ ...base, ...over, name: `bad` });
    const err = await loadEmbeddingModel(await gpu(), bufferSource(bytes)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe(code);
  });

  it('refuses an unsupported tensor type', async () => {
    const bytes = buildBertFixture({ ...base, name: 'bad' });
    // Retype attn_q of block 0 to Q5_0 (type 6) in the tensor table: the loader must refuse it by name.
    const name = new TextEncoder().encode('blk.0.attn_q.weight');
    let at = -1;
    for (let i = 0; i < bytes.length - name.length && at < 0; i++) if (name.every((c, j) => bytes[i + j] === c)) at = i;
    const typeAt = at + name.length + 4 + 2 * 8;
    new DataView(bytes.buffer).setUint32(typeAt, 6, true);
    const err = await loadEmbeddingModel(await gpu(), bufferSource(bytes)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNSUPPORTED_TENSOR_TYPE', details: { tensor: 'blk.0.attn_q.weight', type: 'Q5_0' } });
  });

  it('reads CLS pooling from the file', async () => {
    const spec = { ...base, name: 'bert-f32-cls', pooling: 2 };
    const m = await load(spec);
    const ref = await RefBert.load(bertFixturePath(spec));
    const [v] = await m.embed([SENTENCES[0]!]);
    expect(cosine(v!, ref.embed(m.tokenize(SENTENCES[0]!)))).toBeGreaterThanOrEqual(MIN_COS_REF);
    expect(m.config.pooling).toBe('cls');
    m.destroy();
  });
});

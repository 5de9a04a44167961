// Embedding throughput of the BERT embedder (src/model/bert.ts) in Node on Dawn: texts per second over a fixed
// set of sentences, on the test fixtures and on a MiniLM-L6-shaped random model (384 wide, 6 layers, 12 heads).
// Usage: npx tsx bench/embed.ts [--robustness off]   (prints a table and JSON; add a model to MODELS)

import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import type { BertFixtureSpec } from '../test/fixtures/bert.js';

// src/ imports WGSL with Vite's `?raw`: register the hook before loading it.
register('../bin/wgsl-hooks.mjs', import.meta.url);
const { acquireNodeDevice } = await import('../src/gpu/device-node.js');
const { loadEmbeddingModel } = await import('../src/model/bert.js');
const { bufferSource } = await import('../src/model/byte-source.js');
const { GGMLType } = await import('../src/model/gguf.js');
const { BERT_FIXTURES, bertFixturePath, EMBED_SENTENCES } = await import('../test/fixtures/bert.js');
const { CORPUS } = await import('../test/fixtures/vocab.js');

const MINILM: BertFixtureSpec = {
  name: 'minilm-l6-shape-f32',
  type: GGMLType.F32,
  dModel: 384,
  numLayers: 6,
  numHeads: 12,
  ffDim: 1536,
  contextLength: 512,
  seed: 31,
};
const MODELS: BertFixtureSpec[] = [
  BERT_FIXTURES['bert-f32'],
  BERT_FIXTURES['bert-q8_0'],
  MINILM,
  { ...MINILM, name: 'minilm-l6-shape-q8_0', type: GGMLType.Q8_0 },
];

const robustness = !process.argv.includes('off');
const ctx = await acquireNodeDevice({ robustness });
// Questions of the kind a semantic cache sees: 8 to 30 tokens each.
const words = CORPUS.split(/\s+/u).filter((w) => w !== '');
const texts = Array.from({ length: 64 }, (_, i) => `${EMBED_SENTENCES[i % 6]!} ${words.slice(i * 3, i * 3 + (i % 12)).join(' ')}`);

const rows: { model: string; device: string; robustness: boolean; texts: number; meanTokens: number; textsPerSec: number }[] = [];
for (const spec of MODELS) {
  const model = await loadEmbeddingModel(ctx, bufferSource(readFileSync(bertFixturePath(spec))));
  await model.embed(texts.slice(0, 4)); // compile pipelines
  const t0 = performance.now();
  await model.embed(texts);
  const sec = (performance.now() - t0) / 1000;
  const meanTokens = texts.reduce((a, t) => a + model.tokenize(t).length, 0) / texts.length;
  rows.push({
    model: spec.name,
    device: ctx.adapter.description || ctx.adapter.vendor,
    robustness,
    texts: texts.length,
    meanTokens,
    textsPerSec: texts.length / sec,
  });
  model.destroy();
}
console.table(rows.map((r) => ({ ...r, meanTokens: r.meanTokens.toFixed(1), textsPerSec: r.textsPerSec.toFixed(1) })));
console.log(JSON.stringify(rows));
process.exit(0);

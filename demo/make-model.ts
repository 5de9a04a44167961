// Writes the demo's bundled tiny model (demo/models/hearth-tiny.gguf): a seeded random-weight
// llama with the benchmark's byte-level BPE vocabulary (no lone byte tokens, so every output is
// valid UTF-8), generated at set-up so nothing is downloaded. Its text is gibberish by
// construction; it shows the runtime, not a language model.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GGMLType } from '../src/model/gguf.js';
import { buildFixture } from '../test/fixtures/models.js';
import { benchVocabMeta } from '../bench/models.js';

const out = join(dirname(fileURLToPath(import.meta.url)), 'models', 'hearth-tiny.gguf');
if (!existsSync(out)) {
  mkdirSync(dirname(out), { recursive: true });
  const bytes = buildFixture({
    name: 'hearth-tiny',
    arch: 'llama',
    vocab: 'llama-bpe',
    type: GGMLType.Q8_0,
    dModel: 256,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 4,
    ffDim: 704,
    contextLength: 2048,
    seed: 2026,
    vocabOverride: benchVocabMeta(),
  });
  writeFileSync(out, bytes);
  process.stderr.write(`wrote ${out} (${bytes.length} bytes)\n`);
}

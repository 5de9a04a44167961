// hearth's WordPiece tokenizer (tokenizer.ggml.model = bert) against llama.cpp's WPM tokenizer (node-llama-cpp,
// vocab-only loads of the BERT fixtures). To cover new text, add it to WPM_TEXTS.

import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferSource } from '../../src/model/byte-source.js';
import { GGUFMeta, parseGGUF } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { BERT_FIXTURES, bertFixturePath, type BertFixtureSpec } from '../fixtures/bert.js';
import { CORPUS } from '../fixtures/vocab.js';

/** Text aimed at WordPiece: case, accents, CJK, punctuation and symbols, unknown words, BERT's special tokens. */
const WPM_TEXTS: string[] = [
  'The Lighthouse Keeper',
  'THE LIGHTHOUSE KEEPER WOKE',
  'lighthouses keepers keeping',
  'Café Naïve RÉSUMÉ Ångström',
  'İstanbul ǅ ß ẞ ﬁ',
  '日本語のテキスト 日本',
  '한국어 가나다',
  'Привет, мир! ПРИВЕТ',
  'Ελληνικά ΣΊΣΥΦΟΣ',
  'e\u0301 a\u0300 o\u0308 combining',
  '[CLS] hello [SEP] world [MASK] [PAD] [UNK]',
  '[cls] lower-case specials',
  'a+b=c; x^2 < y | z ~ w `q` $5 €5 ©2024 ™',
  'emoji 👋🏽 and 🚀 ok',
  'zero\u200bwidth\u200djoiner\u00adsoft',
  'xylophone qqqq zzzz',
  "don't won't it's",
  '',
  ' ',
  '   ',
  '\n\n',
  ' \t \n ',
  'Hello, world! How are you? Fine... thanks.',
  '1,000,000 or 3.14159 at 7:30 am, $19.99 or 100% off',
  'Arabic-Indic ٣٤٥ and fullwidth １２３ fractions ½ ¾ ² Ⅻ',
  '(brackets) [of] {all} <kinds> keeper@example.org https://example.org/lighthouse?id=42&lang=en',
  '--- *** ___ ### +++ === !!!???...',
  '\u00a0nbsp\u2003em space\u3000ideographic\u0085next',
  'zero\u200bwidth\ufeffbom',
  'lone \ud800 surrogate \udfff here',
  '\u0000 null \u0001 soh \u007f del \ufffd replacement',
  '\u2581 literal lower one eighth block \u2581\u2581',
  'Supercalifragilisticexpialidocious',
  CORPUS.slice(0, 600),
  CORPUS,
];

/** Seeded random strings from corpus words and WordPiece-relevant atoms. */
function randomTexts(count: number, seed: number): string[] {
  let state = seed >>> 0;
  const rnd = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const atoms = [
    ' ',
    '  ',
    '\n',
    '\t',
    '.',
    ',',
    '!',
    '-',
    "'",
    '(',
    ')',
    '$',
    '+',
    '^',
    '`',
    '日',
    '語',
    'É',
    'é',
    'ü',
    'Σ',
    'ß',
    '[CLS]',
    '[SEP]',
    '\u200b',
    '1',
    '42',
    'THE',
    'keeper',
    'Lighthouse',
    'ing',
    'qz',
    '👋',
  ];
  const words = CORPUS.split(/\s+/u).filter((w) => w !== '');
  const pick = (xs: string[]): string => xs[Math.floor(rnd() * xs.length)]!;
  return Array.from({ length: count }, () => {
    let s = '';
    for (let n = 1 + Math.floor(rnd() * 14); n > 0; n--) s += rnd() < 0.5 ? pick(words) : pick(atoms);
    return s;
  });
}

const CASES: { name: string; spec: BertFixtureSpec }[] = [
  { name: 'default normalizer (lowercase, strip accents)', spec: BERT_FIXTURES['bert-f32'] },
  {
    name: 'cased (lowercase=false)',
    spec: { ...BERT_FIXTURES['bert-f32'], name: 'bert-f32-cased', metaOverride: { 'tokenizer.ggml.normalizer.lowercase': false } },
  },
  {
    name: 'lowercase, accents kept',
    spec: {
      ...BERT_FIXTURES['bert-f32'],
      name: 'bert-f32-accents',
      metaOverride: { 'tokenizer.ggml.normalizer.lowercase': true, 'tokenizer.ggml.normalizer.strip_accents': false },
    },
  },
];

const show = (s: string): string => JSON.stringify(s);
let llama: Llama;

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.disabled });
});

describe.each(CASES)('WordPiece tokenizer vs llama.cpp: $name', ({ spec }) => {
  let model: LlamaModel;
  let tok: Tokenizer;
  const ids = (t: readonly Token[]): number[] => Array.from(t, Number);
  const all = [...WPM_TEXTS, ...randomTexts(300, 6061)];

  beforeAll(async () => {
    const path = bertFixturePath(spec);
    tok = Tokenizer.fromGGUF(new GGUFMeta((await parseGGUF(bufferSource(readFileSync(path)))).metadata));
    model = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
  });

  afterAll(async () => {
    await model.dispose();
  });

  it('reads the same special tokens', () => {
    expect(tok.model).toBe('bert');
    expect(tok.bosId).toBe(model.tokens.bos);
    expect(tok.sepId).toBe(model.tokens.sep);
    expect(tok.eosId).toBe(model.tokens.eos);
  });

  it(`encodes ${all.length} texts to the same ids, with and without special tokens parsed`, () => {
    const diffs: string[] = [];
    for (const s of all) {
      for (const parseSpecial of [true, false]) {
        const want = ids(model.tokenize(s, parseSpecial));
        const got = tok.encode(s, { parseSpecial });
        if (got.join() !== want.join()) diffs.push(`${show(s)} parseSpecial=${parseSpecial}\n  hearth ${got.join(',')}\n  llama  ${want.join(',')}`);
      }
    }
    expect(diffs.slice(0, 20)).toEqual([]);
  });

  it('covers the vocabulary: most corpus words are single pieces, some split, some unknown', () => {
    const out = tok.encode(WPM_TEXTS.join(' '));
    expect(out.filter((id) => id === tok.unkId).length).toBeGreaterThan(0);
    expect(new Set(out).size).toBeGreaterThan(40);
  });
});

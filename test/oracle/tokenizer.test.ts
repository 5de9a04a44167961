// hearth's tokenizers against llama.cpp (node-llama-cpp, vocab-only loads) on the fixture vocabularies.
// To cover a new vocabulary or pre-tokenizer, add it to VOCABS; to cover new text, add strings to TEXTS.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferSource } from '../../src/model/byte-source.js';
import { GGUFMeta, parseGGUF } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { f32, u32, writeGGUF, type MetaValue } from '../fixtures/gguf-writer.js';
import { bpeVocabMeta, CORPUS, spmVocabMeta } from '../fixtures/vocab.js';

/** Text that exercises whitespace, digits, punctuation, contractions, scripts, special tokens and unknown words. */
export const TEXTS: string[] = [
  '',
  ' ',
  '  ',
  '   ',
  '\n',
  '\n\n',
  '\t',
  '\r',
  '\r\n\r\n',
  ' \t \n ',
  ' \n',
  'Hello',
  ' Hello',
  'Hello ',
  'Hello  world',
  '  leading spaces',
  'trailing spaces   ',
  'multiple     spaces\there',
  'line one\nline two\r\nline three\n\n\nend',
  'word\n  indented\n\tand tabbed',
  'tabs\tand\t\tmore\ttabs',
  'vertical\u000btab and form\u000cfeed',
  '1',
  '12',
  '123',
  '1234',
  '12345678901234567890',
  '3.14159 and 2.71828',
  '1,000,000 or 1 000 000',
  '2024-05-17 at 7:30 am',
  '$19.99 or 100% off',
  'Arabic-Indic ٣٤٥ and fullwidth １２３',
  'fractions ½ ¾ superscript ² roman Ⅻ',
  'Hello, world! How are you? Fine... thanks.',
  '!!!???...,,,;;;',
  '(brackets) [of] {all} <kinds>',
  'keeper@example.org https://example.org/lighthouse?id=42&lang=en',
  '`code` ~tilde~ ^caret^ |pipe| \\backslash\\ "quoted"',
  '--- *** ___ ### +++ ===',
  "I'm",
  "DON'T",
  "you'll we've they're she'd it's",
  "YOU'LL WE'VE THEY'RE SHE'D IT'S",
  "'s 't 're 'S 'T 'RE",
  "rock 'n' roll and O'Neil's",
  "a ' b '' c ' ' d",
  'a . b , c ? d ! e',
  'The Lighthouse KEEPER wOkE early',
  'camelCaseWords and snake_case_words and kebab-case-words',
  'café naïve résumé',
  'Straße ß ẞ',
  '日本語のテキスト',
  '👋🏽 hello 🌍🚀',
  'Привет, мир!',
  'Ελληνικά γράμματα',
  'مرحبا بالعالم',
  'e\u0301 combining acute',
  '\u00a0nbsp\u2003em space\u3000ideographic',
  '\u0085next line',
  'zero\u200bwidth\ufeffbom',
  '\ufeffleading byte order mark',
  'lone \ud800 surrogate \udfff here',
  '\u0000 null \u0001 soh \u007f del',
  '<|eot_id|>',
  '<|begin_of_text|>Hello<|eot_id|>',
  '<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>',
  '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  '<|endoftext|><|endoftext|>',
  '<s>[INST] hi [/INST]</s>',
  'text <unk> more </s> end',
  'partial <|im_end and <|eot_id',
  'xylophone quizzical zephyr',
  'Supercalifragilisticexpialidocious',
  'qqqqqqqqqqqqqqqqqqqq',
  '\u2581 literal lower one eighth block \u2581\u2581',
  'the the the lighthouse lighthouse keeper',
  '<|user|>\nHi there<|end|>\n<|assistant|>',
  'a <|end|>  b <|endoftext|>\n\n c',
  '<tool_call>{"name": "x"}</tool_call>',
  'fill <|fim_pad|><|fim_pad|> in',
  CORPUS.slice(0, 600),
  CORPUS,
];

/** Seeded random strings stitched from corpus words and awkward pieces (spaces, scripts, digits, special texts). */
function randomTexts(count: number, seed: number): string[] {
  let state = seed >>> 0;
  const rnd = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const words = CORPUS.split(/\s+/u).filter((w) => w !== '');
  const atoms = [
    ' ',
    ' ',
    '  ',
    '\n',
    '\r\n',
    '\t',
    '\u00a0',
    '\u3000',
    '\u0085',
    "'",
    "'s",
    "'S",
    "'ll",
    "'RE",
    '1',
    '23',
    '456',
    '7890',
    '٣',
    '½',
    '.',
    ',',
    '!',
    '?',
    '...',
    '-',
    '_',
    '(',
    ')',
    '"',
    '<',
    '>',
    '|',
    '$',
    '+',
    '`',
    '~',
    '^',
    'é',
    'e\u0301',
    'ß',
    '日本',
    '語',
    '👋🏽',
    '🚀',
    'Привет',
    'Ω',
    'ﬁ',
    '\u200b',
    '\ufeff',
    '\u0000',
    '\u007f',
    '▁',
    '<|eot_id|>',
    '<|im_end|>',
    '<|endoftext|>',
    '</s>',
    '<s>',
    '<unk>',
    '<|end|>',
    '<tool_call>',
    'A',
    'q',
    'xyz',
    'THE',
  ];
  const pick = (xs: string[]): string => xs[Math.floor(rnd() * xs.length)]!;
  return Array.from({ length: count }, () => {
    let s = '';
    for (let n = 1 + Math.floor(rnd() * 12); n > 0; n--) s += rnd() < 0.4 ? pick(words) : pick(atoms);
    return s;
  });
}

const RANDOM_TEXTS = randomTexts(300, 20240517);

interface VocabCase {
  name: string;
  arch: 'llama' | 'qwen2';
  meta: () => Record<string, MetaValue>;
}

function withoutKey(m: Record<string, MetaValue>, key: string): Record<string, MetaValue> {
  const out = { ...m };
  delete out[key];
  return out;
}

/** Append tokens (text, token_type) to a vocabulary, and optionally retype existing ones. */
function extend(m: Record<string, MetaValue>, added: [string, number][], retype: Record<string, number> = {}): Record<string, MetaValue> {
  const tokens = [...(m['tokenizer.ggml.tokens'] as string[]), ...added.map(([t]) => t)];
  const types = Int32Array.from([...(m['tokenizer.ggml.token_type'] as Int32Array), ...added.map(([, ty]) => ty)]);
  for (const [t, ty] of Object.entries(retype)) types[tokens.indexOf(t)] = ty;
  const out: Record<string, MetaValue> = { ...m, 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.token_type': types };
  const scores = m['tokenizer.ggml.scores'];
  if (scores instanceof Float32Array) out['tokenizer.ggml.scores'] = Float32Array.from([...scores, ...added.map(() => 0)]);
  return out;
}

const CONTROL = 3;
const USER_DEFINED = 4;
const NORMAL = 1;

const VOCABS: VocabCase[] = [
  { name: 'spm', arch: 'llama', meta: spmVocabMeta },
  { name: 'llama-bpe', arch: 'llama', meta: () => bpeVocabMeta('llama-bpe') },
  { name: 'qwen2', arch: 'qwen2', meta: () => bpeVocabMeta('qwen2') },
  // Variants of the same vocabularies that reach other llama.cpp code paths.
  { name: 'spm, add_space_prefix=false', arch: 'llama', meta: () => ({ ...spmVocabMeta(), 'tokenizer.ggml.add_space_prefix': false }) },
  { name: 'bpe, pre=gpt-2', arch: 'qwen2', meta: () => ({ ...bpeVocabMeta('qwen2'), 'tokenizer.ggml.pre': 'gpt-2' }) },
  { name: 'bpe, no pre (default)', arch: 'qwen2', meta: () => withoutKey(bpeVocabMeta('qwen2'), 'tokenizer.ggml.pre') },
  // Equal scores everywhere: every merge is decided by llama.cpp's leftmost-first tie-break.
  {
    name: 'spm, equal scores',
    arch: 'llama',
    meta: () => ({ ...spmVocabMeta(), 'tokenizer.ggml.scores': new Float32Array((spmVocabMeta()['tokenizer.ggml.tokens'] as string[]).length) }),
  },
  // llama.cpp matches 'phi-3' in general.name: special tokens then swallow the whitespace after them.
  {
    name: 'spm, phi-3 with added tokens',
    arch: 'llama',
    meta: () =>
      extend(spmVocabMeta(), [
        ['<|endoftext|>', CONTROL],
        ['<|end|>', CONTROL],
        ['<|user|>', USER_DEFINED],
        ['<|assistant|>', USER_DEFINED],
        ['<tool_call>', USER_DEFINED],
      ]),
  },
  // Specials typed NORMAL are promoted to control by their text; user-defined ones always split the text.
  {
    name: 'bpe, retyped and added specials',
    arch: 'qwen2',
    meta: () =>
      extend(
        bpeVocabMeta('qwen2'),
        [
          ['<|fim_pad|>', NORMAL],
          ['<tool_call>', USER_DEFINED],
          ['</tool_call>', USER_DEFINED],
        ],
        { '<|im_end|>': NORMAL, '<|im_start|>': USER_DEFINED },
      ),
  },
];

/** A vocabulary-only GGUF that llama.cpp loads: the architecture's required hyperparameters plus the vocabulary. */
function vocabGGUF(v: VocabCase): Uint8Array {
  const A = v.arch;
  return writeGGUF(
    {
      'general.architecture': A,
      'general.name': `hearth tokenizer ${v.name}`,
      [`${A}.context_length`]: u32(256),
      [`${A}.embedding_length`]: u32(64),
      [`${A}.block_count`]: u32(1),
      [`${A}.feed_forward_length`]: u32(128),
      [`${A}.attention.head_count`]: u32(4),
      [`${A}.attention.head_count_kv`]: u32(4),
      [`${A}.attention.layer_norm_rms_epsilon`]: f32(1e-5),
      [`${A}.rope.dimension_count`]: u32(16),
      ...v.meta(),
    },
    [],
  );
}

const show = (s: string): string => JSON.stringify(s);

let llama: Llama;
let dir: string;

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.disabled });
  dir = mkdtempSync(join(tmpdir(), 'hearth-tok-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each(VOCABS)('tokenizer vs llama.cpp: $name', (v) => {
  let model: LlamaModel;
  let tok: Tokenizer;
  const ids = (t: readonly Token[]): number[] => Array.from(t, Number);

  beforeAll(async () => {
    const bytes = vocabGGUF(v);
    const path = join(dir, `${v.name.replace(/[^a-z0-9]+/gi, '_')}.gguf`);
    writeFileSync(path, bytes);
    tok = Tokenizer.fromGGUF(new GGUFMeta((await parseGGUF(bufferSource(bytes))).metadata));
    model = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
  });

  afterAll(async () => {
    await model.dispose();
  });

  it('reads the same special tokens and flags', () => {
    expect(tok.bosId).toBe(model.tokens.bos);
    expect(tok.eosId).toBe(model.tokens.eos);
    expect(tok.addBos && tok.bosId !== null).toBe(model.tokens.shouldPrependBosToken);
    for (let id = 0; id < tok.vocabSize; id++) {
      if (tok.isEog(id) !== model.isEogToken(id as Token)) expect.fail(`isEog(${id}) differs`);
    }
  });

  it(`encodes ${TEXTS.length} texts to the same ids (special tokens parsed)`, () => {
    const diffs: string[] = [];
    for (const s of TEXTS) {
      const want = ids(model.tokenize(s, true));
      const got = tok.encode(s);
      if (got.join() !== want.join()) diffs.push(`${show(s)}\n  hearth ${got.join(',')}\n  llama  ${want.join(',')}`);
    }
    expect(diffs).toEqual([]);
  });

  it('encodes the same with special tokens not parsed', () => {
    const diffs: string[] = [];
    for (const s of TEXTS) {
      const want = ids(model.tokenize(s, false));
      const got = tok.encode(s, { parseSpecial: false });
      if (got.join() !== want.join()) diffs.push(`${show(s)}\n  hearth ${got.join(',')}\n  llama  ${want.join(',')}`);
    }
    expect(diffs).toEqual([]);
  });

  it(`agrees on ${RANDOM_TEXTS.length} seeded random texts, both ways of parsing special tokens`, () => {
    const diffs: string[] = [];
    for (const s of RANDOM_TEXTS) {
      for (const parseSpecial of [true, false]) {
        const want = ids(model.tokenize(s, parseSpecial));
        const got = tok.encode(s, { parseSpecial });
        if (got.join() !== want.join()) diffs.push(`${show(s)} parseSpecial=${parseSpecial}\n  hearth ${got.join(',')}\n  llama  ${want.join(',')}`);
        const text = tok.detokenize(want, { unparseSpecial: parseSpecial });
        const wantText = model.detokenize(want as Token[], parseSpecial);
        if (text !== wantText) diffs.push(`detokenize ${show(s)}: hearth ${show(text)} llama ${show(wantText)}`);
      }
    }
    expect(diffs).toEqual([]);
  });

  it("detokenizes llama.cpp's token sequences to the same text, and round-trips where llama.cpp does", () => {
    const diffs: string[] = [];
    let roundTrips = 0;
    for (const s of TEXTS) {
      const t = model.tokenize(s, true);
      for (const special of [false, true]) {
        const want = model.detokenize(t, special);
        const got = tok.detokenize(ids(t), { unparseSpecial: special });
        if (got !== want) diffs.push(`${show(s)} special=${special}\n  hearth ${show(got)}\n  llama  ${show(want)}`);
      }
      if (model.detokenize(t, true) === s) {
        roundTrips++;
        const plain = tok.decode(tok.encode(s), { special: true });
        // SPM adds '▁' before text that starts the input or follows a special token; decode() keeps it.
        const prefixed = tok.addSpacePrefix && s !== '' && !tok.isSpecial(tok.encode(s)[0]!);
        if (!prefixed && plain !== s) diffs.push(`${show(s)} decode(encode(s)) = ${show(plain)}`);
        if (prefixed && !s.includes('<') && plain !== ` ${s}`) diffs.push(`${show(s)} decode(encode(s)) = ${show(plain)}`);
      }
    }
    expect(diffs).toEqual([]);
    expect(roundTrips).toBeGreaterThan(TEXTS.length / 2);
  });

  it('gives every token the same piece, with and without special rendering', () => {
    // A leading plain token keeps llama.cpp from stripping the piece's leading space (SPM).
    const anchor = tok.encode('x', { parseSpecial: false }).at(-1)!;
    const diffs: string[] = [];
    for (let id = 0; id < tok.vocabSize; id++) {
      for (const special of [false, true]) {
        const want = model.detokenize([anchor, id] as Token[], special);
        const got = tok.detokenize([anchor, id], { unparseSpecial: special });
        if (got !== want) diffs.push(`token ${id} ${show(tok.tokenText(id))} special=${special}: hearth ${show(got)} llama ${show(want)}`);
      }
    }
    expect(diffs).toEqual([]);
  });
});

// Tokenizer behaviour without llama.cpp: byte fallback, special-token splitting, EOG, pieces, metadata errors, fixtures.
// The exact-match evidence against llama.cpp lives in test/oracle/tokenizer.test.ts; add behaviour checks here.

import { describe, expect, it, vi } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { GGUFMeta, parseGGUF } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { BYTE_CHAR, preTokenize, toByteLevel } from '../../src/model/tokenizer-bpe.js';
import { u32, writeGGUF, type MetaValue } from '../fixtures/gguf-writer.js';
import { bpeVocabMeta, gpt2ByteChars, spmVocabMeta } from '../fixtures/vocab.js';

async function load(meta: Record<string, MetaValue>): Promise<Tokenizer> {
  const file = await parseGGUF(bufferSource(writeGGUF({ 'general.architecture': 'llama', ...meta }, [])));
  return Tokenizer.fromGGUF(new GGUFMeta(file.metadata));
}

async function loadError(meta: Record<string, MetaValue>): Promise<EngineError> {
  try {
    await load(meta);
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    return e as EngineError;
  }
  throw new Error('expected an EngineError');
}

const td = new TextDecoder();

/** A hand-made SPM vocabulary small enough to reason about. */
function tinySpm(extra: Record<string, MetaValue> = {}): Record<string, MetaValue> {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  // Each longer piece is two shorter ones joined; earlier pieces score higher.
  const pieces = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '▁h', 'll', '▁he', '▁hell', '▁hello', '▁w', 'or', 'ld', '▁wor', '▁world', 'lo'];
  for (const p of pieces) {
    tokens.push(p);
    types.push(1);
  }
  tokens.push('<|im_end|>', '<tool>');
  types.push(3, 4);
  const scores = tokens.map((t, i) => (i < 259 ? 0 : -i));
  return {
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': Float32Array.from(scores),
    'tokenizer.ggml.token_type': Int32Array.from(types),
    ...extra,
  };
}

describe('SPM tokenizer', () => {
  it('merges by score and prefixes a space', async () => {
    const tok = await load(tinySpm());
    const ids = tok.encode('hello world');
    expect(ids.map((i) => tok.tokenText(i))).toEqual(['▁hello', '▁world']);
    expect(tok.decode(ids)).toBe(' hello world');
    expect(tok.detokenize(ids)).toBe('hello world');
  });

  it('falls back to byte tokens for characters outside the vocabulary', async () => {
    const tok = await load(tinySpm());
    const ids = tok.encode('日');
    // '▁' then the three UTF-8 bytes of 日 (E6 97 A5) as <0xNN> tokens.
    expect(ids.map((i) => tok.tokenText(i))).toEqual(['▁', '<0xE6>', '<0x97>', '<0xA5>']);
    expect(ids.slice(1).map((i) => tok.tokenBytes(i).length)).toEqual([1, 1, 1]);
    expect(tok.decode(ids)).toBe(' 日');
    // Piece by piece, a byte token alone is not valid UTF-8; the bytes together are.
    expect(td.decode(Uint8Array.from(ids.flatMap((i) => [...tok.tokenBytes(i)])))).toBe(' 日');
  });

  it('honours add_space_prefix=false', async () => {
    const tok = await load(tinySpm({ 'tokenizer.ggml.add_space_prefix': false }));
    expect(tok.addSpacePrefix).toBe(false);
    expect(tok.encode('hello').map((i) => tok.tokenText(i))).toEqual(['h', 'e', 'll', 'o']);
  });

  it('restarts the space prefix after a special token', async () => {
    const tok = await load(tinySpm());
    const ids = tok.encode('hello<|im_end|>world');
    expect(ids.map((i) => tok.tokenText(i))).toEqual(['▁hello', '<|im_end|>', '▁world']);
  });

  it('reads the SPM defaults: BOS 1, EOS 2, UNK 0, add BOS', async () => {
    const tok = await load(tinySpm());
    expect([tok.bosId, tok.eosId, tok.unkId, tok.addBos]).toEqual([1, 2, 0, true]);
    expect(tok.encode('hello', { addBos: true })[0]).toBe(1);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('', { addBos: true })).toEqual([1]);
  });

  it('reports a missing byte token as a model problem', async () => {
    const meta = tinySpm();
    const tokens = [...(meta['tokenizer.ggml.tokens'] as string[])];
    tokens[3 + 0xe6] = '<0xE6-gone>';
    const tok = await load({ ...meta, 'tokenizer.ggml.tokens': tokens });
    expect(() => tok.encode('日')).toThrowError(expect.objectContaining({ code: 'BAD_MODEL_FILE' }) as Error);
  });
});

describe('special tokens', () => {
  it('splits control tokens only when parseSpecial, user-defined tokens always', async () => {
    const tok = await load(tinySpm());
    const ctl = tok.encode('<|im_end|>');
    expect(ctl).toEqual([tok.vocabSize - 2]);
    const asText = tok.encode('<|im_end|>', { parseSpecial: false });
    expect(asText.length).toBeGreaterThan(1);
    expect(tok.decode(asText)).toBe(' <|im_end|>');
    expect(tok.encode('<tool>', { parseSpecial: false })).toEqual([tok.vocabSize - 1]);
  });

  it('renders control tokens only on request, user-defined tokens always', async () => {
    const tok = await load(tinySpm());
    const ctl = tok.vocabSize - 2;
    const user = tok.vocabSize - 1;
    expect(tok.tokenBytes(ctl).length).toBe(0);
    expect(td.decode(tok.tokenBytes(ctl, true))).toBe('<|im_end|>');
    expect(td.decode(tok.tokenBytes(user))).toBe('<tool>');
    expect(tok.decode([1, ctl, user])).toBe('<tool>');
    expect(tok.decode([1, ctl, user], { special: true })).toBe('<s><|im_end|><tool>');
  });

  it('matches the longest special text first', async () => {
    const meta = bpeVocabMeta('qwen2');
    const tokens = [...(meta['tokenizer.ggml.tokens'] as string[]), '<|im', '<|im_end|>x'];
    const types = Int32Array.from([...(meta['tokenizer.ggml.token_type'] as Int32Array), 3, 3]);
    const tok = await load({ ...meta, 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.token_type': types });
    const n = tok.vocabSize;
    const imEnd = tokens.indexOf('<|im_end|>');
    expect(tok.encode('<|im_end|>x<|im_end|><|im')).toEqual([n - 1, imEnd, n - 2]);
  });
});

describe('end of generation', () => {
  it('follows llama.cpp: EOS, EOT by text, and the known end texts', async () => {
    const llama3 = await load(bpeVocabMeta('llama-bpe'));
    const id = (t: Tokenizer, s: string): number => t.encode(s)[0]!;
    expect(llama3.isEog(id(llama3, '<|eot_id|>'))).toBe(true);
    expect(llama3.isEog(id(llama3, '<|end_of_text|>'))).toBe(true);
    expect(llama3.isEog(id(llama3, '<|begin_of_text|>'))).toBe(false);
    expect(llama3.isEog(id(llama3, '<|start_header_id|>'))).toBe(false);
    expect(llama3.eotId).toBe(id(llama3, '<|eot_id|>'));

    const qwen = await load(bpeVocabMeta('qwen2'));
    expect(qwen.isEog(id(qwen, '<|im_end|>'))).toBe(true);
    expect(qwen.isEog(id(qwen, '<|endoftext|>'))).toBe(true);
    expect(qwen.isEog(id(qwen, '<|im_start|>'))).toBe(false);
    expect(qwen.isEog(id(qwen, 'hello'))).toBe(false);
  });

  it('treats an end text typed NORMAL as a control token, as llama.cpp overrides it', async () => {
    const meta = bpeVocabMeta('qwen2');
    const types = Int32Array.from(meta['tokenizer.ggml.token_type'] as Int32Array);
    const imEnd = (meta['tokenizer.ggml.tokens'] as string[]).indexOf('<|im_end|>');
    types[imEnd] = 1;
    const tok = await load({ ...meta, 'tokenizer.ggml.token_type': types });
    expect(tok.isEog(imEnd)).toBe(true);
    expect(tok.isSpecial(imEnd)).toBe(true);
    expect(tok.tokenBytes(imEnd).length).toBe(0);
  });

  it('adds fill-in-middle pad/repo/sep tokens and a named eot_token_id', async () => {
    const meta = tinySpm();
    const tokens = [...(meta['tokenizer.ggml.tokens'] as string[]), '<|fim_pad|>', '<|file_sep|>', '<stop>'];
    const n = tokens.length;
    const tok = await load({
      ...meta,
      'tokenizer.ggml.tokens': tokens,
      'tokenizer.ggml.scores': new Float32Array(n),
      'tokenizer.ggml.token_type': Int32Array.from([...(meta['tokenizer.ggml.token_type'] as Int32Array), 1, 1, 3]),
      'tokenizer.ggml.eot_token_id': u32(n - 1),
    });
    expect([tok.isEog(n - 3), tok.isEog(n - 2), tok.isEog(n - 1), tok.isEog(2)]).toEqual([true, true, true, true]);
    expect(tok.eotId).toBe(n - 1);
  });
});

describe('byte-level BPE', () => {
  it('maps bytes to GPT-2 characters and back', async () => {
    expect(BYTE_CHAR).toEqual(gpt2ByteChars());
    expect(toByteLevel(' hé\n')).toBe('ĠhÃ©Ċ');
    const tok = await load(bpeVocabMeta('qwen2'));
    const ids = tok.encode(' hé\n');
    expect(tok.decode(ids)).toBe(' hé\n');
    const the = tok.encode(' the');
    expect(the.length).toBe(1);
    expect(tok.tokenText(the[0]!)).toBe('Ġthe');
    expect(td.decode(tok.tokenBytes(the[0]!))).toBe(' the');
  });

  it('pre-tokenizes like llama 3 (digits by three, case-insensitive contractions) and qwen2 (single digits)', () => {
    expect(preTokenize("Hello world 1234567 DON'T it's", 'llama3')).toEqual(['Hello', ' world', ' ', '123', '456', '7', ' DON', "'T", ' it', "'s"]);
    expect(preTokenize('ab 123', 'qwen2')).toEqual(['ab', ' ', '1', '2', '3']);
    expect(preTokenize('a  \n\n  b\t!!\n', 'llama3')).toEqual(['a', '  \n\n', ' ', ' b', '\t', '!!\n']);
    expect(preTokenize("DON'T 1234", 'gpt2')).toEqual(['DON', "'", 'T', ' 1234']);
    expect(preTokenize('x.y 1234', 'default')).toEqual(['x', '.', 'y', ' ', '123', '4']);
  });

  it('keeps a leading byte order mark when decoding', async () => {
    const tok = await load(bpeVocabMeta('qwen2'));
    expect(tok.decode(tok.encode('\ufeffhi'))).toBe('\ufeffhi');
  });

  it('round-trips text through encode and decode', async () => {
    for (const pre of ['llama-bpe', 'qwen2'] as const) {
      const tok = await load(bpeVocabMeta(pre));
      for (const s of ['', ' ', 'Hello, WORLD!  \n\tx', '日本語 👋🏽 Straße', "don't 12345 <|im_end|>"]) {
        expect(tok.decode(tok.encode(s), { special: true })).toBe(s);
      }
    }
  });

  it("cleans spaces in detokenize() for llama-bpe but not for qwen2, as llama.cpp's detokenizer", async () => {
    const llama3 = await load(bpeVocabMeta('llama-bpe'));
    const qwen = await load(bpeVocabMeta('qwen2'));
    const s = "Hello , world . I 'm here";
    expect(llama3.detokenize(llama3.encode(s))).toBe("Hello, world. I'm here");
    expect(llama3.decode(llama3.encode(s))).toBe(s);
    expect(qwen.detokenize(qwen.encode(s))).toBe(s);
  });

  it('uses llama.cpp defaults for add_bos_token per pre-tokenizer', async () => {
    const noBosFlag = (m: Record<string, MetaValue>): Record<string, MetaValue> => {
      const out = { ...m };
      delete out['tokenizer.ggml.add_bos_token'];
      return out;
    };
    expect((await load(noBosFlag(bpeVocabMeta('llama-bpe')))).addBos).toBe(true);
    expect((await load(noBosFlag(bpeVocabMeta('qwen2')))).addBos).toBe(false);
    expect((await load({ ...bpeVocabMeta('qwen2'), 'tokenizer.ggml.add_bos_token': true })).addBos).toBe(true);
  });
});

describe('malformed metadata', () => {
  it('rejects scores or token types shorter than the vocabulary', async () => {
    const meta = tinySpm();
    const n = (meta['tokenizer.ggml.tokens'] as string[]).length;
    const e1 = await loadError({ ...meta, 'tokenizer.ggml.scores': new Float32Array(n - 1) });
    expect(e1.code).toBe('BAD_MODEL_FILE');
    expect(e1.message).toContain(`${n - 1} entries for ${n} tokens`);
    const e2 = await loadError({ ...meta, 'tokenizer.ggml.token_type': new Int32Array(3) });
    expect(e2.code).toBe('BAD_MODEL_FILE');
  });

  it('rejects missing tokens, wrong types, duplicates and BPE without merges', async () => {
    const meta = tinySpm();
    const noTokens = { ...meta };
    delete noTokens['tokenizer.ggml.tokens'];
    expect((await loadError(noTokens)).code).toBe('BAD_MODEL_FILE');
    expect((await loadError({ ...meta, 'tokenizer.ggml.tokens': [] })).code).toBe('BAD_MODEL_FILE');
    expect((await loadError({ ...meta, 'tokenizer.ggml.scores': 'high' })).code).toBe('BAD_MODEL_FILE');
    expect((await loadError({ ...meta, 'tokenizer.ggml.token_type': Float32Array.of(1) })).code).toBe('BAD_MODEL_FILE');
    const dup = [...(meta['tokenizer.ggml.tokens'] as string[])];
    dup[dup.length - 1] = dup[dup.length - 2]!;
    expect((await loadError({ ...meta, 'tokenizer.ggml.tokens': dup })).code).toBe('BAD_MODEL_FILE');
    const noMerges = { ...bpeVocabMeta('qwen2') };
    delete noMerges['tokenizer.ggml.merges'];
    expect((await loadError(noMerges)).code).toBe('BAD_MODEL_FILE');
    const noModel = { ...meta };
    delete noModel['tokenizer.ggml.model'];
    expect((await loadError(noModel)).code).toBe('BAD_MODEL_FILE');
  });

  it('refuses tokenizer models and pre-tokenizers it does not implement', async () => {
    expect((await loadError({ ...tinySpm(), 'tokenizer.ggml.model': 't5' })).code).toBe('UNSUPPORTED_ARCHITECTURE');
    expect((await loadError({ ...bpeVocabMeta('qwen2'), 'tokenizer.ggml.pre': 'tekken' })).code).toBe('UNSUPPORTED_ARCHITECTURE');
  });

  it('ignores special token ids outside the vocabulary, as llama.cpp does', async () => {
    const tok = await load({ ...tinySpm(), 'tokenizer.ggml.bos_token_id': u32(100000) });
    expect(tok.bosId).toBe(1);
  });

  it('refuses out-of-range ids in tokenBytes and a BOS that does not exist', async () => {
    const tok = await load(tinySpm());
    expect(() => tok.tokenBytes(tok.vocabSize)).toThrowError(expect.objectContaining({ code: 'BAD_REQUEST' }) as Error);
    expect(() => tok.tokenBytes(-1)).toThrowError(EngineError);
    const meta = bpeVocabMeta('qwen2');
    const small = (meta['tokenizer.ggml.tokens'] as string[]).slice(0, 10);
    const tiny = await load({
      'tokenizer.ggml.model': 'gpt2',
      'tokenizer.ggml.tokens': small,
      'tokenizer.ggml.merges': [],
    });
    expect(tiny.bosId).toBe(null); // llama.cpp's BPE default (11) is outside a 10-token vocabulary
    expect(() => tiny.encode('x', { addBos: true })).toThrowError(expect.objectContaining({ code: 'BAD_REQUEST' }) as Error);
  });
});

describe('fixture vocabularies', () => {
  it('have the documented layout and sizes', () => {
    const spm = spmVocabMeta();
    const tokens = spm['tokenizer.ggml.tokens'] as string[];
    const scores = spm['tokenizer.ggml.scores'] as Float32Array;
    expect(tokens.length).toBeGreaterThanOrEqual(500);
    expect(tokens.length).toBeLessThanOrEqual(2000);
    expect(tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(tokens[3]).toBe('<0x00>');
    expect(tokens[258]).toBe('<0xFF>');
    for (let i = 260; i < tokens.length; i++) expect(scores[i]!).toBeLessThan(scores[i - 1]!);
    expect(new Set(tokens).size).toBe(tokens.length);

    for (const pre of ['llama-bpe', 'qwen2'] as const) {
      const bpe = bpeVocabMeta(pre);
      const bt = bpe['tokenizer.ggml.tokens'] as string[];
      const types = bpe['tokenizer.ggml.token_type'] as Int32Array;
      expect(bt.length).toBeGreaterThanOrEqual(500);
      expect(bt.length).toBeLessThanOrEqual(2000);
      expect(bt.slice(0, 256)).toEqual(gpt2ByteChars());
      const set = new Set(bt);
      for (const m of bpe['tokenizer.ggml.merges'] as string[]) expect(set.has(m.replace(' ', ''))).toBe(true);
      expect(types[bt.length - 1]).toBe(3);
      expect(bt.at(-1)).toBe(pre === 'qwen2' ? '<|im_end|>' : '<|eot_id|>');
    }
  });

  it('are deterministic', async () => {
    const a = JSON.stringify(spmVocabMeta()['tokenizer.ggml.tokens']);
    // A fresh module instance recomputes from scratch.
    vi.resetModules();
    const fresh = await import('../fixtures/vocab.js');
    expect(fresh.spmVocabMeta()).not.toBe(spmVocabMeta());
    expect(JSON.stringify(fresh.spmVocabMeta()['tokenizer.ggml.tokens'])).toBe(a);
    expect(JSON.stringify(fresh.bpeVocabMeta('llama-bpe')['tokenizer.ggml.merges'])).toBe(JSON.stringify(bpeVocabMeta('llama-bpe')['tokenizer.ggml.merges']));
  });
});

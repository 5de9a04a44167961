// WordPiece preprocessing and matching (src/model/tokenizer-wpm.ts) on hand-checked cases; the full comparison
// with llama.cpp is test/oracle/tokenizer-wpm.test.ts. To extend: add [input, words] pairs to PRE.

import { describe, expect, it } from 'vitest';
import { wpmPreprocess, wpmTokenize } from '../../src/model/tokenizer-wpm.js';

const UNCASED = { lowercase: true, stripAccents: true };
const PRE: [string, string[]][] = [
  ['Hello,  World!', ['hello', ',', 'world', '!']],
  ['Café naïve RÉSUMÉ', ['cafe', 'naive', 'resume']],
  ['e\u0301 combining', ['e', 'combining']], // the mark is dropped
  ['İstanbul', ['istanbul']], // UnicodeData's simple lowercase, not JS's two-code-point one
  ['日本語です', ['日', '本', '語', 'てす']], // ideographs split; kana are letters and join (で → て: first code point of its NFD)
  ['가', ['\u1100']], // Hangul syllables become their leading jamo (llama.cpp keeps NFD's first code point)
  ['a+b=c $5 €5', ['a', '+', 'b', '=', 'c', '$', '5', '€5']], // ASCII symbols split, other symbols do not
  ['zero\u200bwidth\u0000\ufffd', ['zerowidth']], // format/control characters, NUL and U+FFFD vanish
  ['\u00a0\u3000 \n', []],
];

describe('wpmPreprocess', () => {
  it.each(PRE)('%j', (text, words) => expect(wpmPreprocess(text, UNCASED)).toEqual(words));
  it('keeps case and accents when the normalizer says so', () => {
    expect(wpmPreprocess('Café', { lowercase: false, stripAccents: false })).toEqual(['Café']);
    expect(wpmPreprocess('Café', { lowercase: true, stripAccents: false })).toEqual(['café']);
  });
});

describe('wpmTokenize', () => {
  const vocab = ['[UNK]', '▁the', '▁light', 'house', 'h', 'o', 'u', 's', 'e', '▁,'];
  const v = { tokenToId: new Map(vocab.map((t, i) => [t, i])), maxTokenLength: 6, unkId: 0 };
  const enc = (s: string): string[] => {
    const out: number[] = [];
    wpmTokenize(s, UNCASED, v, out);
    return out.map((i) => vocab[i]!);
  };
  it('covers each word greedily with the longest piece, word starts marked by ▁', () => {
    expect(enc('The lighthouse, the')).toEqual(['▁the', '▁light', 'house', '▁,', '▁the']);
  });
  it('gives one [UNK] for a word it cannot cover, dropping its partial pieces', () => {
    expect(enc('lightz the')).toEqual(['[UNK]', '▁the']);
    expect(enc('house')).toEqual(['[UNK]']); // 'house' exists only as a continuation
  });
});

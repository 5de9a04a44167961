// LexicalEmbedder: the zero-download, deterministic default embedder of the semantic cache — signed hashing
// of words, consonant skeletons, character trigrams, bigrams and the whole content-word sequence. To change its
// features or weights, bump LEXICAL_VERSION (it is in the id, so old vectors are never compared with new ones).
//
// What it catches (tested in test/unit/cache-lexical.test.ts at DEFAULT_THRESHOLDS):
//  - case, Unicode width/compatibility forms (NFKC), punctuation, contractions ("what's" = "what is",
//    "don't" = "do not") and texting spellings ("u" = "you");
//  - filler and politeness ("hi", "please", "can you", "tell me", "thanks", articles), dropped before hashing;
//  - one typo per word where it keeps the word's consonant skeleton (first letter, then consonants, runs
//    collapsed) or its sorted letters: vowel slips, doubled or dropped double letters, transpositions
//    ("pasword", "cancle", "trakc", "recieve", "shiping"). Other typos (a wrong consonant) miss.
//  - other function words ("how do I" vs "how can I"), which are weighted low.
// What it refuses on purpose: anything whose sequence of content words differs — another content word
// ("reset my password" vs "reset my router", "cancel my order" vs "track my order", "… on sundays" vs
// "… on saturdays" in a long query), another order ("celsius to fahrenheit" vs the reverse), a number
// ("2 people" vs "4 people") or a negation ("does it include" vs "does it not include"): the whole-sequence
// feature carries half the norm, so such a pair scores at most 0.5. That also means it does not catch
// paraphrases with other words ("I forgot my login"): that is a model embedder's job. Blind spots: two
// different words with the same skeleton ("form"/"from", "create"/"cart") look like typos of each other;
// tense and person carried by function words ("where is" vs "where was") are nearly ignored.

import { EngineError } from '../api/errors.js';
import type { Embedder } from './embedder.js';
import { l2Normalize } from './embedder.js';

/** Bump when features or weights change: stored vectors from another version must not be compared. */
export const LEXICAL_VERSION = 1;

/** Multi-word filler, removed before single words (longest first). */
const FILLER_PHRASES = [
  'i would like to',
  'i d like to',
  'id like to',
  'i want to',
  'i wanna',
  'i need to',
  'can you',
  'could you',
  'would you',
  'will you',
  'can u',
  'could u',
  'do you know',
  'tell me',
  'thank you',
  'thanks in advance',
  'is it possible to',
].map((p) => p.split(' '));

/** Single words that carry no meaning in a query. */
const FILLER_WORDS = new Set([
  'a',
  'an',
  'the',
  'please',
  'pls',
  'plz',
  'kindly',
  'hi',
  'hey',
  'hello',
  'thanks',
  'thank',
  'thx',
  'ty',
  'just',
  'um',
  'uh',
  'ok',
  'okay',
  'so',
  'well',
  'actually',
  'really',
  'quick',
  'question',
  'quickly',
]);

/** Contractions (apostrophes already removed) and texting spellings, spelled out, so "what's" = "what is" and "don't" = "do not". */
const EXPAND: Record<string, string[]> = {
  whats: ['what', 'is'],
  hows: ['how', 'is'],
  wheres: ['where', 'is'],
  whos: ['who', 'is'],
  thats: ['that', 'is'],
  theres: ['there', 'is'],
  im: ['i', 'am'],
  ive: ['i', 'have'],
  youre: ['you', 'are'],
  dont: ['do', 'not'],
  doesnt: ['does', 'not'],
  didnt: ['did', 'not'],
  isnt: ['is', 'not'],
  arent: ['are', 'not'],
  wasnt: ['was', 'not'],
  werent: ['were', 'not'],
  cant: ['can', 'not'],
  cannot: ['can', 'not'],
  wont: ['will', 'not'],
  wouldnt: ['would', 'not'],
  shouldnt: ['should', 'not'],
  couldnt: ['could', 'not'],
  havent: ['have', 'not'],
  hasnt: ['has', 'not'],
  u: ['you'],
  ur: ['your'],
  r: ['are'],
  thru: ['through'],
  pls: [],
  plz: [],
};

/** Function words: kept (they shape bigrams) but weighted low. */
const FUNCTION_WORDS = new Set([
  'i',
  'me',
  'my',
  'mine',
  'you',
  'your',
  'we',
  'our',
  'us',
  'it',
  'its',
  'is',
  'are',
  'am',
  'was',
  'were',
  'be',
  'been',
  'do',
  'does',
  'did',
  'to',
  'of',
  'for',
  'with',
  'how',
  'what',
  'can',
  'could',
  'should',
  'would',
  'will',
  'this',
  'that',
  'and',
  'or',
  'there',
  'here',
  'have',
  'has',
  'about',
  'get',
  'any',
  'some',
]);

/** Negations change the meaning of everything around them: weighted double, matched exactly. */
const NEGATIONS = new Set(['not', 'no', 'never', 'none', 'nothing', 'without', 'nor']);

const W_CONTENT = 1;
const W_FUNCTION = 0.3;
const W_EXACT = 2; // numbers and negations
/** Per-word feature blocks, as shares of the word's weight (each block has this L2 norm). */
const U = 0.4; // the exact word
const K = 0.9; // the consonant skeleton: survives vowel typos and doubled letters
const S = 0.9; // the skeleton's letters sorted: survives consonant transpositions
const C = 0.5; // character trigrams of "<word>": partial credit for any other typo
const B = 0.8; // word bigrams (over skeletons, so a typo does not break them)
/**
 * The whole sequence of content words, each as its sorted skeleton, as one feature of norm Q (the
 * rest of the vector has norm 1): a query that keeps every content word in order, up to typos, shares
 * it; a near-miss with one other content word does not, which halves its similarity however long the
 * query. This is what keeps "… close on sundays" from hitting "… close on saturdays".
 */
const Q = 1;
const MIN_SKELETON_LEN = 3;

/**
 * The word's first letter, then the rest without vowels, runs of one letter collapsed:
 * "password" and "pasword" → "pswrd", "cancel" and "cancle" → "cncl", "email" and "emial" → "eml".
 */
export function skeleton(w: string): string {
  const rest = w.slice(1).replace(/[aeiouàáâãäåèéêëìíîïòóôõöùúûü]/g, '');
  return (w[0]! + rest).replace(/(.)\1+/gu, '$1');
}

/** Query text → the tokens that are hashed: NFKC, lower case, apostrophes joined, punctuation gone, filler dropped. */
export function lexicalTokens(text: string): string[] {
  const norm = text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/['’‘`´]/g, '')
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
  const words = (norm ? norm.split(' ') : []).flatMap((w) => EXPAND[w] ?? [w]);
  const out: string[] = [];
  outer: for (let i = 0; i < words.length;) {
    for (const p of FILLER_PHRASES) {
      if (p.every((w, j) => words[i + j] === w)) {
        i += p.length;
        continue outer;
      }
    }
    const w = words[i++]!;
    if (!FILLER_WORDS.has(w)) out.push(w);
  }
  return out;
}

function isExact(w: string): boolean {
  return NEGATIONS.has(w) || /\p{N}/u.test(w);
}

function weightOf(w: string): number {
  if (isExact(w)) return W_EXACT;
  return FUNCTION_WORDS.has(w) ? W_FUNCTION : W_CONTENT;
}

/** FNV-1a over UTF-16 code units with a murmur3 finalizer: fast, stable across platforms. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hashed lexical features (signed hashing into `dim` buckets), L2-normalized.
 * Deterministic and synchronous underneath; `embed` is async only to satisfy Embedder.
 * @example
 *   const e = new LexicalEmbedder();
 *   const [a, b] = await e.embed(['How do I reset my password?', 'how do i reset my pasword']);
 */
export class LexicalEmbedder implements Embedder {
  readonly id: string;
  readonly dim: number;
  private readonly mask: number;

  /** `dim` must be a power of two (default 2048). */
  constructor(opts: { dim?: number } = {}) {
    const dim = opts.dim ?? 2048;
    if (!Number.isInteger(dim) || dim < 64 || (dim & (dim - 1)) !== 0)
      throw new EngineError('BAD_REQUEST', `LexicalEmbedder dim must be a power of two ≥ 64, got ${dim}.`, { dim });
    this.dim = dim;
    this.mask = dim - 1;
    this.id = `lexical-v${LEXICAL_VERSION}-d${dim}`;
  }

  embed(texts: readonly string[]): Promise<Float32Array[]> {
    return Promise.resolve(texts.map((t) => this.embedOne(t)));
  }

  embedOne(text: string): Float32Array {
    const v = new Float32Array(this.dim);
    const add = (feature: string, weight: number): void => {
      const h = hash32(feature);
      v[h & this.mask]! += h & 0x80000000 ? -weight : weight;
    };
    const toks = lexicalTokens(text);
    const keys: string[] = []; // what bigrams are made of: the skeleton where the word has one
    for (const w of toks) {
      const wt = weightOf(w);
      const full = Math.sqrt(U * U + K * K + S * S + C * C);
      if (isExact(w)) {
        // All of the word's weight on one exact feature: "2" and "3" share nothing.
        add(`w:${w}`, wt * full);
        keys.push(`=${w}`);
        continue;
      }
      const sk = skeleton(w);
      if (sk.length < MIN_SKELETON_LEN) {
        // Too short for a skeleton that means anything ("to", "fr"): the exact word and its trigrams only.
        add(`w:${w}`, wt * Math.sqrt(U * U + K * K + S * S));
        keys.push(`=${w}`);
      } else {
        add(`w:${w}`, wt * U);
        add(`k:${sk}`, wt * K);
        add(`s:${[...sk].sort().join('')}`, wt * S);
        keys.push(sk);
      }
      const padded = `<${w}>`;
      const tri: string[] = [];
      for (let i = 0; i + 3 <= padded.length; i++) tri.push(padded.slice(i, i + 3));
      for (const g of tri) add(`c:${g}`, (wt * C) / Math.sqrt(tri.length));
    }
    // Adjacent pairs, and adjacent pairs of content words (function words skipped): word order matters.
    for (let i = 0; i + 1 < toks.length; i++) add(`b:${keys[i]} ${keys[i + 1]}`, B * Math.sqrt(weightOf(toks[i]!) * weightOf(toks[i + 1]!)));
    const content = toks.map((w, i) => [w, keys[i]!] as const).filter(([w]) => weightOf(w) >= W_CONTENT);
    for (let i = 0; i + 1 < content.length; i++) add(`cb:${content[i]![1]} ${content[i + 1]![1]}`, B);
    l2Normalize(v);
    if (content.length > 0) add(`q:${content.map(([, k]) => (k.startsWith('=') ? k : [...k].sort().join(''))).join(' ')}`, Q);
    return l2Normalize(v);
  }
}

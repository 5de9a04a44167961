// WordPiece (tokenizer.ggml.model = bert) as llama.cpp's llm_tokenizer_wpm runs it: BERT-style normalization
// (lower-case, strip accents), punctuation splitting, then greedy longest match per word. Check changes against test/oracle.

/** llama.cpp's BertNormalizer options (tokenizer.ggml.normalizer.lowercase / .strip_accents, both default true). */
export interface WpmNormalizer {
  lowercase: boolean;
  stripAccents: boolean;
}

export interface WpmVocab {
  tokenToId: ReadonlyMap<string, number>;
  /** Longest token text in UTF-16 units (no match can be longer). */
  maxTokenLength: number;
  /** Emitted for a word no run of tokens spells. */
  unkId: number;
}

// Code point classes, from the Unicode general category as llama.cpp's unicode-data tables have them
// (scripts/gen-unicode-data.py: Cn is "undefined", Cc/Cf/Co/Cs are control).
const WHITESPACE = 1;
const CONTROL = 2;
const ACCENT = 4;
const PUNCT = 8;
const SYMBOL = 16;
const KNOWN = 128;

const RE_WHITESPACE = /\p{White_Space}/u;
const RE_CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;
const RE_ACCENT = /\p{M}/u;
const RE_PUNCT = /\p{P}/u;
const RE_SYMBOL = /\p{S}/u;

const bmp = new Uint8Array(0x10000);
const astral = new Map<number, number>();

function classify(cp: number): number {
  const s = String.fromCodePoint(cp);
  return (
    KNOWN |
    (RE_WHITESPACE.test(s) ? WHITESPACE : 0) |
    (RE_CONTROL.test(s) ? CONTROL : 0) |
    (RE_ACCENT.test(s) ? ACCENT : 0) |
    (RE_PUNCT.test(s) ? PUNCT : 0) |
    (RE_SYMBOL.test(s) ? SYMBOL : 0)
  );
}

function flags(cp: number): number {
  if (cp < 0x10000) {
    let f = bmp[cp]!;
    if (f === 0) bmp[cp] = f = classify(cp);
    return f;
  }
  let f = astral.get(cp);
  if (f === undefined) astral.set(cp, (f = classify(cp)));
  return f;
}

/**
 * llama.cpp's "NFD": each code point becomes the first code point of its canonical decomposition
 * (é → e, 가 → ᄀ); the marks a decomposition would add are not produced.
 */
function nfdFirst(cp: number): number {
  if (cp < 0xc0) return cp;
  return String.fromCodePoint(cp).normalize('NFD').codePointAt(0)!;
}

/** UnicodeData's simple lowercase mapping (one code point), as llama.cpp's unicode_tolower. */
function toLower(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
  if (cp === 0x130) return 0x69; // İ: the full mapping (JS toLowerCase) is two code points, the simple one is 'i'
  const l = String.fromCodePoint(cp).toLowerCase();
  const c = l.codePointAt(0)!;
  return l.length === (c > 0xffff ? 2 : 1) ? c : cp;
}

function isChinese(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) || // llama.cpp copies HF's 0x2B920 (not 0x2B820)
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/**
 * Split text into words as llm_tokenizer_wpm_session::preprocess: whitespace ends a word; NUL, U+FFFD and
 * control characters vanish; accents vanish when stripping; punctuation, ASCII symbols and CJK ideographs are
 * words of their own.
 */
export function wpmPreprocess(text: string, norm: WpmNormalizer): string[] {
  const words: string[] = [];
  let cur = '';
  for (const ch of text) {
    let cp = ch.codePointAt(0)!;
    if (norm.stripAccents) cp = nfdFirst(cp);
    const f = flags(cp);
    if (f & WHITESPACE) {
      if (cur !== '') words.push(cur);
      cur = '';
      continue;
    }
    if (cp === 0 || cp === 0xfffd || f & CONTROL) continue;
    if (norm.stripAccents && f & ACCENT) continue;
    const s = String.fromCodePoint(norm.lowercase ? toLower(cp) : cp);
    if (f & PUNCT || (cp < 0x7f && f & SYMBOL) || isChinese(cp)) {
      if (cur !== '') words.push(cur);
      words.push(s);
      cur = '';
    } else cur += s;
  }
  if (cur !== '') words.push(cur);
  return words;
}

const PHANTOM_SPACE = '\u2581';

/**
 * WordPiece over one run of text (no special tokens in it): each word, with '▁' prepended (the vocabulary
 * stores word-initial pieces as '▁word' and continuations bare), is covered left to right by the longest
 * matching token; a word that cannot be covered becomes the unknown token.
 */
export function wpmTokenize(text: string, norm: WpmNormalizer, vocab: WpmVocab, out: number[]): void {
  for (const w of wpmPreprocess(text, norm)) {
    const word = PHANTOM_SPACE + w;
    const n = word.length;
    const start = out.length;
    for (let i = 0; i < n;) {
      let matched = false;
      for (let j = Math.min(n, i + vocab.maxTokenLength); j > i; j--) {
        const id = vocab.tokenToId.get(word.slice(i, j));
        if (id !== undefined) {
          out.push(id);
          matched = true;
          i = j;
          break;
        }
      }
      if (!matched) {
        out.length = start;
        break;
      }
    }
    if (out.length === start) out.push(vocab.unkId);
  }
}

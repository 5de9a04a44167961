// Byte-level BPE (tokenizer.ggml.model = gpt2) as llama.cpp runs it: pre-tokenizer splitters, GPT-2 byte<->char map, ranked merges.
// To support another tokenizer.ggml.pre, add its names to PRE_TOKENIZERS with a splitter checked against llama.cpp's unicode.cpp.

/** Which word splitter a pre-tokenizer uses, and the flags llama.cpp sets with it. */
export interface PreTokenizer {
  kind: 'llama3' | 'qwen2' | 'gpt2' | 'default';
  /** A word that is itself a token is emitted whole, without merging (llama 3). */
  ignoreMerges: boolean;
  /** llama.cpp's default for add_bos_token when the file does not say. */
  addBos: boolean;
  /** Whether llama.cpp's detokenizer removes spaces before punctuation (clean_up_tokenization_spaces). */
  cleanSpaces: boolean;
}

const LLAMA3: PreTokenizer = { kind: 'llama3', ignoreMerges: true, addBos: true, cleanSpaces: true };
const LLAMA3_REGEX_ONLY: PreTokenizer = { kind: 'llama3', ignoreMerges: false, addBos: false, cleanSpaces: true };
const QWEN2: PreTokenizer = { kind: 'qwen2', ignoreMerges: false, addBos: false, cleanSpaces: false };
const GPT2: PreTokenizer = { kind: 'gpt2', ignoreMerges: false, addBos: false, cleanSpaces: true };
const DEFAULT: PreTokenizer = { kind: 'default', ignoreMerges: false, addBos: false, cleanSpaces: true };

/** tokenizer.ggml.pre names, grouped as llama.cpp's llama_vocab::impl::load groups them. */
export const PRE_TOKENIZERS: ReadonlyMap<string, PreTokenizer> = new Map([
  ['', DEFAULT],
  ['default', DEFAULT],
  ...['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral', 'midm-2.0', 'lfm2', 'jina-v5-nano'].map((n): [string, PreTokenizer] => [n, LLAMA3]),
  ['dbrx', LLAMA3_REGEX_ONLY],
  ['smaug-bpe', LLAMA3_REGEX_ONLY],
  ...['qwen2', 'deepseek-r1-qwen', 'kormo', 'f2llmv2'].map((n): [string, PreTokenizer] => [n, QWEN2]),
  ...['gpt-2', 'phi-2', 'jina-es', 'jina-de', 'gigachat', 'jina-v2-es', 'jina-v2-de', 'a.x-4.0', 'mellum', 'modern-bert'].map((n): [string, PreTokenizer] => [
    n,
    GPT2,
  ]),
]);

// ---- GPT-2 byte <-> printable character table ----------------------------------------------------

/** BYTE_CHAR[b]: the character a byte-level vocabulary uses for byte b. */
export const BYTE_CHAR: readonly string[] = (() => {
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
  return out;
})();

/** Code point of a byte-level character -> the byte it stands for. */
export const CHAR_BYTE: ReadonlyMap<number, number> = new Map(BYTE_CHAR.map((c, b) => [c.codePointAt(0)!, b]));

const utf8 = new TextEncoder();

/** The byte-level spelling of a string's UTF-8 bytes. */
export function toByteLevel(s: string): string {
  let out = '';
  for (const b of utf8.encode(s)) out += BYTE_CHAR[b]!;
  return out;
}

/**
 * Bytes of a byte-level token text, as llama.cpp's llama_decode_text: a character outside the byte
 * table becomes the literal text "[UNK_BYTE_0x<its utf-8 hex><whole token text>]".
 */
export function fromByteLevel(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = CHAR_BYTE.get(ch.codePointAt(0)!);
    if (b !== undefined) {
      out.push(b);
      continue;
    }
    const hex = Array.from(utf8.encode(ch), (x) => x.toString(16).padStart(2, '0')).join('');
    for (const x of utf8.encode(`[UNK_BYTE_0x${hex}${text}]`)) out.push(x);
  }
  return Uint8Array.from(out);
}

// ---- code point classes, as llama.cpp's unicode_cpt_flags -----------------------------------------

const LETTER = 1;
const NUMBER = 2;
const SPACE = 4;
/** Set for every code point inside the current piece; llama.cpp's flags are all zero past its end. */
const INSIDE = 8;
const KNOWN = 16;

const RE_LETTER = /\p{L}/u;
const RE_NUMBER = /\p{N}/u;
// llama.cpp's whitespace set is Unicode's White_Space property (it includes U+0085, excludes U+FEFF).
const RE_SPACE = /\p{White_Space}/u;

const bmpFlags = new Uint8Array(0x10000);
const astralFlags = new Map<number, number>();

function classify(cp: number): number {
  const s = String.fromCodePoint(cp);
  return INSIDE | (RE_LETTER.test(s) ? LETTER : 0) | (RE_NUMBER.test(s) ? NUMBER : 0) | (RE_SPACE.test(s) ? SPACE : 0);
}

function cpFlags(cp: number): number {
  if (cp < 0x10000) {
    let f = bmpFlags[cp]!;
    if (f === 0) bmpFlags[cp] = f = classify(cp) | KNOWN;
    return f;
  }
  let f = astralFlags.get(cp);
  if (f === undefined) astralFlags.set(cp, (f = classify(cp)));
  return f;
}

const CH_APOS = 0x27;
const CH_SPACE = 0x20;
const CH_CR = 0x0d;
const CH_LF = 0x0a;

function lowerAscii(cp: number): number {
  return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
}

/** One piece of text as code points; flags(i) is zero outside [0, n), as llama.cpp's _get_flags. */
class Piece {
  readonly cps: number[];
  readonly n: number;
  constructor(s: string) {
    this.cps = Array.from(s, (c) => c.codePointAt(0)!);
    this.n = this.cps.length;
  }
  cp(i: number): number {
    return i < this.n ? this.cps[i]! : -1;
  }
  flags(i: number): number {
    return i < this.n ? cpFlags(this.cps[i]!) : 0;
  }
}

/** Length (in code points) of a contraction at pos: 's 't 'm 'd (2) or 're 've 'll (3), else 0. */
function contractionLen(p: Piece, pos: number, caseInsensitive: boolean): number {
  if (p.cp(pos) !== CH_APOS || pos + 1 >= p.n) return 0;
  const low = caseInsensitive ? lowerAscii : (c: number): number => c;
  const c1 = low(p.cp(pos + 1));
  if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return 2; // s t m d
  if (pos + 2 >= p.n) return 0;
  const c2 = low(p.cp(pos + 2));
  if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) return 3; // re ve ll
  return 0;
}

const isPunctLike = (f: number): boolean => f !== 0 && (f & (SPACE | LETTER | NUMBER)) === 0;

/**
 * The llama 3 / qwen2 pattern
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (qwen2: \p{N} single digits), scanned the way llama.cpp's hand-written matcher does. Returns piece lengths in code points.
 */
function splitLlama3(p: Piece, maxDigits: number): number[] {
  const out: number[] = [];
  let prev = 0;
  const cut = (end: number): void => {
    if (end > prev) out.push(end - prev);
    prev = end;
  };
  let pos = 0;
  while (pos < p.n) {
    const c = p.cp(pos);
    const f = p.flags(pos);
    const k = contractionLen(p, pos, true);
    if (k > 0) {
      pos += k;
      cut(pos);
      continue;
    }
    if (!(c === CH_CR || c === CH_LF || f & NUMBER) && (f & LETTER || p.flags(pos + 1) & LETTER)) {
      pos++;
      while (p.flags(pos) & LETTER) pos++;
      cut(pos);
      continue;
    }
    if (f & NUMBER) {
      let ini = pos;
      while (p.flags(pos) & NUMBER) {
        pos++;
        if (pos - ini >= maxDigits) {
          cut(pos);
          ini = pos;
        }
      }
      cut(pos);
      continue;
    }
    const f2 = c === CH_SPACE ? p.flags(pos + 1) : f;
    if ((f2 & (SPACE | LETTER | NUMBER)) === 0 && f !== 0) {
      if (c === CH_SPACE) pos++;
      while (isPunctLike(p.flags(pos))) pos++;
      while (p.cp(pos) === CH_CR || p.cp(pos) === CH_LF) pos++;
      cut(pos);
      continue;
    }
    let nSpace = 0;
    let lastNewlineEnd = 0;
    while (p.flags(pos + nSpace) & SPACE) {
      const c2 = p.cp(pos + nSpace);
      if (c2 === CH_CR || c2 === CH_LF) lastNewlineEnd = pos + nSpace + 1;
      nSpace++;
    }
    if (lastNewlineEnd > 0) {
      pos = lastNewlineEnd;
    } else if (nSpace > 1 && pos + nSpace < p.n) {
      pos += nSpace - 1; // \s+(?!\S): leave the last space to the next word
    } else if (nSpace > 0) {
      pos += nSpace;
    } else {
      pos++;
    }
    cut(pos);
  }
  return out;
}

/** The GPT-2 pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ as llama.cpp scans it. */
function splitGpt2(p: Piece): number[] {
  const out: number[] = [];
  let prev = 0;
  const cut = (end: number): void => {
    if (end > prev) out.push(end - prev);
    prev = end;
  };
  let pos = 0;
  while (pos < p.n) {
    const c = p.cp(pos);
    const k = contractionLen(p, pos, false);
    if (k > 0) {
      pos += k;
      cut(pos);
      continue;
    }
    const f2 = c === CH_SPACE ? p.flags(pos + 1) : p.flags(pos);
    const run = f2 & LETTER ? LETTER : f2 & NUMBER ? NUMBER : 0;
    if (run !== 0) {
      if (c === CH_SPACE) pos++;
      while (p.flags(pos) & run) pos++;
      cut(pos);
      continue;
    }
    if (isPunctLike(f2)) {
      if (c === CH_SPACE) pos++;
      while (isPunctLike(p.flags(pos))) pos++;
      cut(pos);
      continue;
    }
    let nSpace = 0;
    while (p.flags(pos + nSpace) & SPACE) nSpace++;
    if (nSpace > 1 && pos + nSpace < p.n) pos += nSpace - 1;
    else if (nSpace > 0) pos += nSpace;
    else pos++;
    cut(pos);
  }
  return out;
}

/** Cut a string into pieces of the given code point lengths. */
function cutByLengths(s: string, lengths: number[]): string[] {
  const out: string[] = [];
  let at = 0; // UTF-16 offset
  for (const len of lengths) {
    let end = at;
    for (let i = 0; i < len; i++) end += s.codePointAt(end)! > 0xffff ? 2 : 1;
    out.push(s.slice(at, end));
    at = end;
  }
  return out;
}

/** Split each piece by a global regex, keeping both the matches and the text between them (std::regex_iterator style). */
function splitByRegex(pieces: string[], re: RegExp): string[] {
  const out: string[] = [];
  for (const s of pieces) {
    let last = 0;
    for (const m of s.matchAll(re)) {
      if (m.index > last) out.push(s.slice(last, m.index));
      out.push(m[0]);
      last = m.index + m[0].length;
    }
    if (last < s.length) out.push(s.slice(last));
  }
  return out;
}

// The 'default' pre-tokenizer's extra passes. llama.cpp runs them with std::regex on text whose non-ASCII
// code points are collapsed to their category; for \p{P} and \p{N} that is the same as these.
const RE_DEFAULT_PUNCT = /[\p{P}$+<=>^~|]+/gu;
const RE_DEFAULT_DIGITS = /\p{N}+/gu;
const RE_DEFAULT_THREE = /[0-9][0-9][0-9]/gu;

/** Split text into words with a pre-tokenizer (before byte-level encoding). */
export function preTokenize(text: string, kind: PreTokenizer['kind']): string[] {
  switch (kind) {
    case 'llama3':
    case 'qwen2':
      return cutByLengths(text, splitLlama3(new Piece(text), kind === 'llama3' ? 3 : 1));
    case 'gpt2':
      return cutByLengths(text, splitGpt2(new Piece(text)));
    case 'default': {
      let pieces = splitByRegex([text], RE_DEFAULT_PUNCT);
      pieces = pieces.flatMap((s) => cutByLengths(s, splitGpt2(new Piece(s))));
      pieces = splitByRegex(pieces, RE_DEFAULT_DIGITS);
      return splitByRegex(pieces, RE_DEFAULT_THREE);
    }
  }
}

// ---- merges ------------------------------------------------------------------------------------------

/** Key of a merge pair; the length prefix keeps (a, b) pairs distinct whatever characters they hold. */
export function mergeKey(a: string, b: string): string {
  return `${a.length}:${a}${b}`;
}

/** tokenizer.ggml.merges -> rank by pair. As llama.cpp: split at the first space after position 0; the first rank wins. */
export function buildMergeRanks(merges: readonly string[]): Map<string, number> {
  const ranks = new Map<string, number>();
  merges.forEach((m, i) => {
    const sp = m.indexOf(' ', 1);
    const key = sp < 0 ? mergeKey('', '') : mergeKey(m.slice(0, sp), m.slice(sp + 1));
    if (!ranks.has(key)) ranks.set(key, i);
  });
  return ranks;
}

interface Bigram {
  left: number;
  right: number;
  text: string;
  rank: number;
}

/** Binary heap ordered by `before` (the element that must come out first). */
export class Heap<T> {
  private items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

export interface BpeVocab {
  tokenToId: ReadonlyMap<string, number>;
  ranks: ReadonlyMap<string, number>;
}

/**
 * Tokenize one byte-level word: merge the lowest-ranked adjacent pair first (ties: leftmost), as
 * llm_tokenizer_bpe_session. Symbols left without a token fall back to single-character tokens.
 */
export function bpeWord(word: string, vocab: BpeVocab, ignoreMerges: boolean, out: number[]): void {
  const whole = vocab.tokenToId.get(word);
  if (ignoreMerges && whole !== undefined) {
    out.push(whole);
    return;
  }
  // Byte-level words hold only BMP characters, so one UTF-16 unit is one symbol.
  const n = word.length;
  const start = new Int32Array(n);
  const len = new Int32Array(n);
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    start[i] = i;
    len[i] = 1;
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const sym = (i: number): string => word.slice(start[i], start[i]! + len[i]!);
  const queue = new Heap<Bigram>((a, b) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left));
  const addBigram = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const a = sym(left);
    const b = sym(right);
    const rank = vocab.ranks.get(mergeKey(a, b));
    if (rank === undefined) return;
    queue.push({ left, right, text: a + b, rank });
  };
  for (let i = 1; i < n; i++) addBigram(i - 1, i);
  while (queue.size > 0) {
    const bg = queue.pop()!;
    if (len[bg.left] === 0 || len[bg.right] === 0) continue;
    if (sym(bg.left) + sym(bg.right) !== bg.text) continue; // outdated by an earlier merge
    len[bg.left] = len[bg.left]! + len[bg.right]!;
    len[bg.right] = 0;
    next[bg.left] = next[bg.right]!;
    if (next[bg.right]! >= 0) prev[next[bg.right]!] = bg.left;
    addBigram(prev[bg.left]!, bg.left);
    addBigram(bg.left, next[bg.left]!);
  }
  for (let i = 0; i !== -1 && n > 0; i = next[i]!) {
    if (len[i] === 0) continue;
    const s = sym(i);
    const id = vocab.tokenToId.get(s);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    // llama.cpp looks up each UTF-8 byte of the symbol as a one-byte string; only ASCII ones can match.
    for (const ch of s) {
      if (ch.charCodeAt(0) < 0x80) {
        const b = vocab.tokenToId.get(ch);
        if (b !== undefined) out.push(b);
      }
    }
  }
}

const WORD_CACHE_LIMIT = 20000;

/**
 * Tokenize a run of plain text (no special tokens in it). Words repeat a lot in real text, so their
 * ids are kept in `cache` (cleared when it grows past WORD_CACHE_LIMIT words).
 */
export function bpeTokenize(text: string, pre: PreTokenizer, vocab: BpeVocab, out: number[], cache?: Map<string, number[]>): void {
  for (const word of preTokenize(text, pre.kind)) {
    const hit = cache?.get(word);
    if (hit) {
      for (const id of hit) out.push(id);
      continue;
    }
    const ids: number[] = [];
    bpeWord(toByteLevel(word), vocab, pre.ignoreMerges, ids);
    for (const id of ids) out.push(id);
    if (cache) {
      if (cache.size >= WORD_CACHE_LIMIT) cache.clear();
      cache.set(word, ids);
    }
  }
}

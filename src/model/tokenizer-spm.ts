// SentencePiece-style tokenization (tokenizer.ggml.model = llama) as llama.cpp's llm_tokenizer_spm: score-ordered merges, byte fallback.
// Whitespace escaping and the space prefix happen in tokenizer.ts; extend here only the merge loop itself.

import { EngineError } from '../api/errors.js';
import { Heap } from './tokenizer-bpe.js';

export interface SpmVocab {
  tokenToId: ReadonlyMap<string, number>;
  scores: ArrayLike<number>;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  /** Combined length when queued; a different length later means one side was merged since. */
  size: number;
}

const utf8 = new TextEncoder();

/** Token for one byte: `<0xXX>` first, then the one-character token, as llama_vocab::byte_to_token for SPM. */
function byteToken(vocab: SpmVocab, b: number): number {
  const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
  const id = vocab.tokenToId.get(hex) ?? (b < 0x80 ? vocab.tokenToId.get(String.fromCharCode(b)) : undefined);
  if (id === undefined)
    throw new EngineError(
      'BAD_MODEL_FILE',
      `The SPM vocabulary has no byte token ${hex} for byte fallback; llama.cpp fails on this input too. Use a model file whose vocabulary has all 256 <0xNN> tokens.`,
      { byte: b },
    );
  return id;
}

/**
 * Tokenize already-escaped text ('▁' for spaces). Starts from single characters and keeps merging the
 * adjacent pair whose joined text is the highest-scoring token (ties: leftmost); characters left
 * without a token become byte tokens.
 */
export function spmTokenize(text: string, vocab: SpmVocab, out: number[]): void {
  // Symbols are code points; start/len are UTF-16 offsets into text.
  const start: number[] = [];
  const len: number[] = [];
  for (let at = 0; at < text.length;) {
    const l = text.codePointAt(at)! > 0xffff ? 2 : 1;
    start.push(at);
    len.push(l);
    at += l;
  }
  const n = start.length;
  if (n === 0) return;
  const prev = Array.from({ length: n }, (_, i) => i - 1);
  const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
  const sym = (i: number): string => text.slice(start[i], start[i]! + len[i]!);

  const queue = new Heap<Bigram>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
  const tryAdd = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const joined = text.slice(start[left], start[left]! + len[left]! + len[right]!);
    const id = vocab.tokenToId.get(joined);
    if (id === undefined) return;
    queue.push({ left, right, score: vocab.scores[id]!, size: joined.length });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  while (queue.size > 0) {
    const bg = queue.pop()!;
    const l = len[bg.left]!;
    const r = len[bg.right]!;
    if (l === 0 || r === 0 || l + r !== bg.size) continue;
    len[bg.left] = l + r;
    len[bg.right] = 0;
    next[bg.left] = next[bg.right]!;
    if (next[bg.right]! >= 0) prev[next[bg.right]!] = bg.left;
    tryAdd(prev[bg.left]!, bg.left);
    tryAdd(bg.left, next[bg.left]!);
  }

  // A merged symbol is always a token (it was only queued if it was one); others fall back to bytes.
  for (let i = 0; i !== -1; i = next[i]!) {
    const s = sym(i);
    const id = vocab.tokenToId.get(s);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    for (const b of utf8.encode(s)) out.push(byteToken(vocab, b));
  }
}

// Tokenizer: reads tokenizer.ggml.* metadata and encodes/decodes exactly as llama.cpp's llama_vocab (SPM, byte-level BPE, WordPiece).
// New tokenizer models dispatch in encodeText(); new pre-tokenizers go in tokenizer-bpe.ts. Check every change against test/oracle.

import { EngineError } from '../api/errors.js';
import type { GGUFMeta } from './gguf.js';
import { bpeTokenize, buildMergeRanks, fromByteLevel, PRE_TOKENIZERS, type BpeVocab, type PreTokenizer } from './tokenizer-bpe.js';
import { spmTokenize, type SpmVocab } from './tokenizer-spm.js';
import { wpmTokenize, type WpmNormalizer, type WpmVocab } from './tokenizer-wpm.js';

/** tokenizer.ggml.token_type values. */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Token attribute bits, as llama.cpp's llama_token_attr. */
const Attr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  LSTRIP: 1 << 7,
  RSTRIP: 1 << 8,
} as const;

const TYPE_TO_ATTR: Record<number, number> = {
  [TokenType.NORMAL]: Attr.NORMAL,
  [TokenType.UNKNOWN]: Attr.UNKNOWN,
  [TokenType.CONTROL]: Attr.CONTROL,
  [TokenType.USER_DEFINED]: Attr.USER_DEFINED,
  [TokenType.UNUSED]: Attr.UNUSED,
  [TokenType.BYTE]: Attr.BYTE,
};

// Texts llama.cpp recognises when the file does not name these tokens (llama_vocab::impl::load).
const EOT_TEXTS = [
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '<|end_of_text|>',
  '<EOT>',
  '_<EOT>',
  '[EOT]',
  '<｜end▁of▁sentence｜>',
  '<end_of_utterance>',
];
const EOM_TEXTS = ['<|eom_id|>'];
const FIM_PRE_TEXTS = ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>'];
const FIM_SUF_TEXTS = ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>'];
const FIM_MID_TEXTS = ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>'];
const FIM_PAD_TEXTS = ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'];
const FIM_REP_TEXTS = ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'];
const FIM_SEP_TEXTS = ['<|file_sep|>'];
const EOG_TEXTS = new Set([
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<|return|>',
  '<|call|>',
  '<|flush|>',
  '<|calls|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '</s>',
  '<|eom_id|>',
  '<EOT>',
  '_<EOT>',
  '[EOT]',
  '[EOS]',
  '<|end_of_text|>',
  '<end_of_utterance>',
  '<eos>',
  '<turn|>',
  '<|tool_response>',
  '<｜end▁of▁sentence｜>',
  '[e~[',
]);
/** gpt-oss tokens llama.cpp always renders as text. */
const ALWAYS_RENDERED = new Set(['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']);

const SPM_SPACE = '\u2581';
const utf8Encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

export interface EncodeOptions {
  /** Put the BOS token first. Default false. */
  addBos?: boolean;
  /** Match control/unknown token texts (e.g. "<|im_end|>") in the input as those tokens. Default true. */
  parseSpecial?: boolean;
  /** Put the SEP token last (BERT: [CLS] text [SEP] is what llama.cpp's add_special gives). Default false. */
  addSep?: boolean;
}

export interface DetokenizeOptions {
  /** Drop a leading BOS / trailing EOS when the model adds them. Default false. */
  removeSpecial?: boolean;
  /** Render control tokens as their text. Default false. */
  unparseSpecial?: boolean;
}

type Fragment = { token: number } | { text: string };

function bad(msg: string, details: Record<string, number | string> = {}): EngineError {
  return new EngineError('BAD_MODEL_FILE', `Tokenizer metadata: ${msg}`, details);
}

function utf8Length(s: string): number {
  return utf8Encoder.encode(s).length;
}

/** C isspace() on one UTF-16 unit: only ASCII whitespace counts. */
function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * A GGUF vocabulary, tokenizing as llama.cpp does: `llama` (SentencePiece, score-ordered merges with
 * byte fallback) and `gpt2` (byte-level BPE with the llama-bpe, qwen2, gpt-2 or default pre-tokenizer).
 *
 * @example
 * const tok = Tokenizer.fromGGUF(new GGUFMeta(file.metadata));
 * const ids = tok.encode('Hello <|im_end|>');   // special tokens are matched by default
 * tok.decode(ids, { special: true });           // 'Hello <|im_end|>' for a byte-level BPE vocabulary
 */
export class Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly eotId: number | null;
  readonly unkId: number | null;
  readonly padId: number | null;
  /** Whether prompts should start with BOS (tokenizer.ggml.add_bos_token, or llama.cpp's default for the model type). */
  readonly addBos: boolean;
  /** SPM: prepend a space to text that starts the input or follows a special token (tokenizer.ggml.add_space_prefix). */
  readonly addSpacePrefix: boolean;
  readonly model: 'llama' | 'gpt2' | 'bert';
  /** BERT's separator token ([SEP]), appended by encode() with addSep. */
  readonly sepId: number | null;
  /** tokenizer.ggml.pre as given ('' when absent). */
  readonly pre: string;

  private readonly texts: string[];
  private readonly attrs: Uint16Array;
  private readonly tokenToId: Map<string, number>;
  private readonly scores: Float32Array;
  private readonly ranks: Map<string, number>;
  private readonly spmVocab: SpmVocab;
  private readonly bpeVocab: BpeVocab;
  /** tokenizer.ggml.add_eos_token; only detokenize() looks at it, as llama.cpp's llama_detokenize. */
  private readonly addEos: boolean;
  private readonly preTokenizer: PreTokenizer | null;
  /** WordPiece state ('bert' vocabularies only). */
  private readonly wpm: { norm: WpmNormalizer; vocab: WpmVocab } | null = null;
  private readonly eogIds: Set<number>;
  /** Tokens matched in the text before tokenization, longest text first. */
  private readonly specialIds: number[];
  private readonly pieceCache: (Uint8Array | undefined)[];
  private readonly wordCache = new Map<string, number[]>();
  private readonly specialPieceCache: (Uint8Array | undefined)[];

  private constructor(meta: GGUFMeta) {
    const model = meta.str('tokenizer.ggml.model');
    if (model !== 'llama' && model !== 'gpt2' && model !== 'bert')
      throw new EngineError(
        'UNSUPPORTED_ARCHITECTURE',
        `Tokenizer model '${model}' is not supported; hearth reads 'llama' (SentencePiece), 'gpt2' (byte-level BPE) and 'bert' (WordPiece) vocabularies.`,
        { tokenizerModel: model },
      );
    this.model = model;
    this.pre = meta.has('tokenizer.ggml.pre') ? meta.str('tokenizer.ggml.pre') : '';

    const tokens = meta.strings('tokenizer.ggml.tokens');
    if (!tokens) throw bad("'tokenizer.ggml.tokens' is missing; the file has no vocabulary.");
    const n = tokens.length;
    if (n === 0) throw bad("'tokenizer.ggml.tokens' is empty.");
    this.vocabSize = n;

    const scoresRaw = meta.map.get('tokenizer.ggml.scores');
    this.scores = new Float32Array(n);
    if (scoresRaw !== undefined) {
      if (!(scoresRaw instanceof Float32Array || scoresRaw instanceof Int32Array)) throw bad("'tokenizer.ggml.scores' must be an f32 or i32 array.");
      if (scoresRaw.length < n)
        throw bad(`'tokenizer.ggml.scores' has ${scoresRaw.length} entries for ${n} tokens; the file is inconsistent.`, {
          scores: scoresRaw.length,
          tokens: n,
        });
      for (let i = 0; i < n; i++) this.scores[i] = scoresRaw[i]!;
    }

    const typesRaw = meta.map.get('tokenizer.ggml.token_type');
    if (typesRaw !== undefined) {
      if (!(typesRaw instanceof Int32Array)) throw bad("'tokenizer.ggml.token_type' must be an i32 array.");
      if (typesRaw.length < n)
        throw bad(`'tokenizer.ggml.token_type' has ${typesRaw.length} entries for ${n} tokens; the file is inconsistent.`, {
          tokenTypes: typesRaw.length,
          tokens: n,
        });
    }

    this.texts = new Array<string>(n);
    this.attrs = new Uint16Array(n);
    this.tokenToId = new Map();
    for (let i = 0; i < n; i++) {
      // llama.cpp renames empty tokens so that every token has a distinct text.
      const text = tokens[i] === '' ? `[EMPTY_${i}]` : tokens[i]!;
      const dup = this.tokenToId.get(text);
      if (dup !== undefined)
        throw bad(`tokens ${dup} and ${i} have the same text ${JSON.stringify(text)}; llama.cpp refuses such a vocabulary.`, {
          first: dup,
          second: i,
        });
      this.texts[i] = text;
      this.tokenToId.set(text, i);
      this.attrs[i] = typesRaw === undefined ? Attr.NORMAL : (TYPE_TO_ATTR[typesRaw[i]!] ?? Attr.UNDEFINED);
    }

    let addBosDefault: boolean;
    let bos: number | null;
    let eos: number | null;
    let unk: number | null;
    if (model === 'gpt2') {
      const mergesRaw = meta.map.get('tokenizer.ggml.merges');
      if (mergesRaw === undefined) throw bad("'tokenizer.ggml.merges' is missing; a gpt2 (BPE) vocabulary needs its merges.");
      const merges = meta.strings('tokenizer.ggml.merges')!;
      this.ranks = buildMergeRanks(merges);
      const pre = PRE_TOKENIZERS.get(this.pre);
      if (!pre)
        throw new EngineError(
          'UNSUPPORTED_ARCHITECTURE',
          `Pre-tokenizer '${this.pre}' (tokenizer.ggml.pre) is not supported by hearth yet; supported: ${[...PRE_TOKENIZERS.keys()].filter((k) => k).join(', ')}.`,
          { pre: this.pre },
        );
      this.preTokenizer = pre;
      this.addSpacePrefix = meta.bool('tokenizer.ggml.add_space_prefix', false);
      addBosDefault = pre.addBos;
      // llama.cpp's defaults for BPE vocabularies, kept for files that do not name their tokens.
      bos = 11;
      eos = 11;
      unk = null;
    } else if (model === 'bert') {
      // llama.cpp's WPM defaults (llama_vocab::impl::load): [CLS] = 101 leads, [SEP] = 102 closes, [UNK] = 100.
      this.ranks = new Map();
      this.preTokenizer = null;
      this.addSpacePrefix = false;
      addBosDefault = true;
      bos = 101;
      eos = null;
      unk = 100;
    } else {
      this.ranks = new Map();
      this.preTokenizer = null;
      this.addSpacePrefix = meta.bool('tokenizer.ggml.add_space_prefix', true);
      addBosDefault = true;
      bos = 1;
      eos = 2;
      unk = 0;
    }

    // Special token ids: a default outside the vocabulary is dropped; an id in the file outside it is ignored.
    const readId = (key: string, dflt: number | null): number | null => {
      let id = dflt !== null && dflt >= n ? null : dflt;
      if (meta.has(key)) {
        const v = meta.num(key);
        if (Number.isInteger(v) && v >= 0 && v < n) id = v;
      }
      return id;
    };
    const k = 'tokenizer.ggml.';
    this.bosId = readId(`${k}bos_token_id`, bos);
    this.eosId = readId(`${k}eos_token_id`, eos);
    let eot = readId(`${k}eot_token_id`, null);
    let eom = readId(`${k}eom_token_id`, null);
    this.unkId = readId(`${k}unknown_token_id`, unk);
    this.padId = readId(`${k}padding_token_id`, model === 'bert' ? 0 : null);
    this.sepId = readId(`${k}seperator_token_id`, model === 'bert' ? 102 : null); // sic: llama.cpp's key
    let fimPre = readId(`${k}fim_pre_token_id`, null);
    let fimSuf = readId(`${k}fim_suf_token_id`, null);
    let fimMid = readId(`${k}fim_mid_token_id`, null);
    let fimPad = readId(`${k}fim_pad_token_id`, null);
    let fimRep = readId(`${k}fim_rep_token_id`, null);
    let fimSep = readId(`${k}fim_sep_token_id`, null);
    fimPre = readId(`${k}prefix_token_id`, fimPre);
    fimSuf = readId(`${k}suffix_token_id`, fimSuf);
    fimMid = readId(`${k}middle_token_id`, fimMid);
    this.addBos = meta.bool(`${k}add_bos_token`, addBosDefault);
    this.addEos = meta.bool(`${k}add_eos_token`, false);
    this.spmVocab = { tokenToId: this.tokenToId, scores: this.scores };
    this.bpeVocab = { tokenToId: this.tokenToId, ranks: this.ranks };
    if (model === 'bert') {
      if (this.unkId === null) throw bad('a bert (WordPiece) vocabulary needs an unknown token (tokenizer.ggml.unknown_token_id).');
      // The normalizer keys as llama.cpp reads them: strip_accents follows lowercase unless given.
      const lowercase = meta.bool('tokenizer.ggml.normalizer.lowercase', true);
      const stripAccents = meta.bool('tokenizer.ggml.normalizer.strip_accents', lowercase);
      let maxLen = 0;
      for (const t of this.texts) maxLen = Math.max(maxLen, t.length);
      this.wpm = { norm: { lowercase, stripAccents }, vocab: { tokenToId: this.tokenToId, maxTokenLength: maxLen, unkId: this.unkId } };
    }

    // Find unnamed end-of-turn / fill-in-middle tokens by their text and make them control tokens.
    // llama.cpp scans a hash map, so with several candidates its pick is arbitrary; hearth takes the first
    // text in its list (e.g. '<|eot_id|>' before '<|end_of_text|>'). Only eotId can differ; isEog cannot.
    const byText = (list: string[], current: number | null): number | null => {
      if (current !== null) return current;
      for (const t of list) {
        const id = this.tokenToId.get(t);
        if (id === undefined) continue;
        this.attrs[id] = this.attrs[id]! | Attr.CONTROL;
        return id;
      }
      return null;
    };
    eot = byText(EOT_TEXTS, eot);
    eom = byText(EOM_TEXTS, eom);
    byText(FIM_PRE_TEXTS, fimPre);
    byText(FIM_SUF_TEXTS, fimSuf);
    byText(FIM_MID_TEXTS, fimMid);
    fimPad = byText(FIM_PAD_TEXTS, fimPad);
    fimRep = byText(FIM_REP_TEXTS, fimRep);
    fimSep = byText(FIM_SEP_TEXTS, fimSep);
    this.eotId = eot;

    const eog = new Set<number>();
    for (const id of [fimPad, fimRep, fimSep]) if (id !== null) eog.add(id);
    for (const t of EOG_TEXTS) {
      const id = this.tokenToId.get(t);
      if (id === undefined) continue;
      eog.add(id);
      this.attrs[id] = this.attrs[id]! | Attr.CONTROL;
    }
    for (const t of ALWAYS_RENDERED) {
      const id = this.tokenToId.get(t);
      if (id !== undefined) this.attrs[id] = Attr.USER_DEFINED;
    }
    for (const id of [this.eosId, eot, eom]) if (id !== null) eog.add(id);
    // gpt-oss / solar-open: "<|end|>" ends a message, not the generation, when "<|return|>" and "<|call|>" exist.
    const has = (t: string): boolean => {
      const id = this.tokenToId.get(t);
      return id !== undefined && eog.has(id);
    };
    const endId = this.tokenToId.get('<|end|>');
    if (endId !== undefined && eog.has(endId) && ((has('<|return|>') && has('<|call|>')) || (has('<|calls|>') && has('<|flush|>')))) {
      eog.delete(endId);
      this.attrs[endId] = Attr.USER_DEFINED;
    }
    // gemma4 / paddleocr: "</s>" is ordinary text when "<|tool_response>" exists.
    const sId = this.tokenToId.get('</s>');
    if (sId !== undefined && eog.has(sId) && has('<|tool_response>')) {
      eog.delete(sId);
      this.attrs[sId] = Attr.NORMAL;
    }
    this.eogIds = eog;

    const special: number[] = [];
    for (let i = 0; i < n; i++) if (this.attrs[i]! & (Attr.CONTROL | Attr.USER_DEFINED | Attr.UNKNOWN)) special.push(i);
    const byteLen = special.map((id) => utf8Length(this.texts[id]!));
    const order = special.map((_, j) => j).sort((a, b) => byteLen[b]! - byteLen[a]! || special[a]! - special[b]!);
    this.specialIds = order.map((j) => special[j]!);

    // Phi-3 files: special tokens swallow the whitespace after them (llama.cpp matches on general.name).
    const name = meta.has('general.name') ? meta.str('general.name').toLowerCase() : '';
    if (name.includes('phi-3') || name.includes('phi3')) {
      for (const id of this.specialIds) this.attrs[id] = this.attrs[id]! | Attr.RSTRIP;
      const setR = (t: string, on: boolean): void => {
        const id = this.tokenToId.get(t);
        if (id !== undefined) this.attrs[id] = on ? this.attrs[id]! | Attr.RSTRIP : this.attrs[id]! & ~Attr.RSTRIP;
      };
      setR('</s>', true);
      for (const t of ['<unk>', '<s>', '<|endoftext|>']) setR(t, false);
    }

    this.pieceCache = new Array<Uint8Array | undefined>(n);
    this.specialPieceCache = new Array<Uint8Array | undefined>(n);
  }

  /** Read a vocabulary from GGUF metadata (tokenizer.ggml.*). Throws EngineError on malformed metadata. */
  static fromGGUF(meta: GGUFMeta): Tokenizer {
    return new Tokenizer(meta);
  }

  /** Whether generation stops at this token (EOS, EOT, <|im_end|>, <|endoftext|>, ... as llama.cpp decides). */
  isEog(id: number): boolean {
    return this.eogIds.has(id);
  }

  /** All end-of-generation ids, ascending. */
  eogTokenIds(): number[] {
    return [...this.eogIds].sort((a, b) => a - b);
  }

  /** The token's text as stored in the vocabulary (e.g. '▁the', 'Ġthe', '<0x0A>'). */
  tokenText(id: number): string {
    this.checkId(id);
    return this.texts[id]!;
  }

  /** Whether the token is a control, user-defined or unknown token (matched in text before tokenization). */
  isSpecial(id: number): boolean {
    this.checkId(id);
    return (this.attrs[id]! & (Attr.CONTROL | Attr.USER_DEFINED | Attr.UNKNOWN)) !== 0;
  }

  /**
   * Text to token ids. Special tokens in the text are matched first (control and unknown tokens only
   * when parseSpecial, user-defined tokens always), then each run of text is tokenized on its own.
   *
   * @example
   * tok.encode('Hello world', { addBos: tok.addBos })
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addBos) {
      if (this.bosId === null) throw new EngineError('BAD_REQUEST', 'This vocabulary has no BOS token; encode with addBos: false.', {});
      out.push(this.bosId);
    }
    // Lone surrogates cannot be UTF-8 encoded; they become U+FFFD as they would on the way into llama.cpp.
    const wellFormed = text.replace(/\p{Cs}/gu, '\uFFFD');
    const fragments = wellFormed === '' ? [] : this.partition(wellFormed, opts.parseSpecial ?? true);
    if (this.wpm) {
      for (const f of fragments) {
        if ('token' in f) out.push(f.token);
        else wpmTokenize(f.text, this.wpm.norm, this.wpm.vocab, out);
      }
    } else if (this.model === 'llama') {
      let prevSpecial = true;
      for (const f of fragments) {
        if ('token' in f) {
          out.push(f.token);
          prevSpecial = true;
          continue;
        }
        const s = (this.addSpacePrefix && prevSpecial ? ' ' : '') + f.text;
        spmTokenize(s.replaceAll(' ', SPM_SPACE), this.spmVocab, out);
        prevSpecial = false;
      }
    } else {
      for (const f of fragments) {
        if ('token' in f) out.push(f.token);
        else bpeTokenize(f.text, this.preTokenizer!, this.bpeVocab, out, this.wordCache);
      }
    }
    if (opts.addSep) {
      if (this.sepId === null) throw new EngineError('BAD_REQUEST', 'This vocabulary has no SEP token; encode with addSep: false.', {});
      out.push(this.sepId);
    }
    return out;
  }

  /**
   * The bytes this token adds to the output: byte tokens give one byte, SPM '▁' gives a space, byte-level
   * BPE characters give their bytes. Control and unknown tokens give nothing unless `special`.
   * The returned array is shared: do not modify it.
   */
  tokenBytes(id: number, special = false): Uint8Array {
    this.checkId(id);
    const cache = special ? this.specialPieceCache : this.pieceCache;
    let piece = cache[id];
    if (!piece) cache[id] = piece = this.computePiece(id, special);
    return piece;
  }

  /**
   * Token ids to text: the tokens' bytes concatenated, then UTF-8 decoded (invalid sequences become U+FFFD).
   * Unlike llama.cpp's llama_detokenize (see detokenize()), no space is stripped and nothing is cleaned up,
   * so decoding a stream piece by piece gives the same text as decoding it at once.
   */
  decode(ids: number[], opts: { special?: boolean } = {}): string {
    const parts = ids.map((id) => this.tokenBytes(id, opts.special ?? false));
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(concat(parts));
  }

  /**
   * llama.cpp's llama_detokenize: like decode(), but drops the leading space of an SPM text that starts
   * with a space-prefixed piece, and for most BPE vocabularies removes spaces before punctuation
   * (clean_up_tokenization_spaces).
   */
  detokenize(ids: number[], opts: DetokenizeOptions = {}): string {
    let list = ids;
    let removeSpace = this.addSpacePrefix;
    if (opts.removeSpecial && this.addBos && list.length > 0 && list[0] === this.bosId) {
      removeSpace = false;
      list = list.slice(1);
    }
    if (opts.removeSpecial && this.addEos && list.length > 0 && list[list.length - 1] === this.eosId) list = list.slice(0, -1);
    const parts: Uint8Array[] = [];
    for (const id of list) {
      let p = this.tokenBytes(id, opts.unparseSpecial ?? false);
      if (removeSpace && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
      removeSpace = false;
      parts.push(p);
    }
    let bytes = concat(parts);
    if (this.preTokenizer?.cleanSpaces) bytes = cleanSpaces(bytes);
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
      throw new EngineError('BAD_REQUEST', `Token id ${id} is outside the vocabulary (0..${this.vocabSize - 1}).`, {
        id,
        vocabSize: this.vocabSize,
      });
  }

  /** llama.cpp's token_to_piece. */
  private computePiece(id: number, special: boolean): Uint8Array {
    const attr = this.attrs[id]!;
    const text = this.texts[id]!;
    if (attr & (Attr.UNKNOWN | Attr.CONTROL)) return special ? utf8Encoder.encode(text) : EMPTY;
    if (attr & Attr.USER_DEFINED) return utf8Encoder.encode(text);
    if (attr & Attr.NORMAL) {
      if (this.model !== 'gpt2') return utf8Encoder.encode(text.replaceAll(SPM_SPACE, ' '));
      return fromByteLevel(text);
    }
    if (attr & Attr.BYTE) {
      // strtol over the two characters after "<0x"; unparsable gives 0, as in llama.cpp.
      const v = parseInt(text.substring(3, 5), 16);
      return Uint8Array.of(Number.isNaN(v) ? 0 : v & 0xff);
    }
    return EMPTY;
  }

  /**
   * Split text at special tokens, longest token text first, as llama.cpp's tokenizer_st_partition.
   * Control and unknown tokens take part only when parseSpecial; user-defined tokens always do.
   */
  private partition(text: string, parseSpecial: boolean): Fragment[] {
    type Span = { token: number } | { start: number; end: number };
    let spans: Span[] = [{ start: 0, end: text.length }];
    for (const id of this.specialIds) {
      const attr = this.attrs[id]!;
      if (!parseSpecial && attr & (Attr.CONTROL | Attr.UNKNOWN)) continue;
      const needle = this.texts[id]!;
      if (!spans.some((s) => 'start' in s && text.slice(s.start, s.end).includes(needle))) continue;
      const next: Span[] = [];
      for (const span of spans) {
        if ('token' in span) {
          next.push(span);
          continue;
        }
        let { start } = span;
        const { end } = span;
        while (start < end) {
          const m = text.indexOf(needle, start);
          if (m < 0 || m + needle.length > end) break;
          let leftEnd = m;
          if (attr & Attr.LSTRIP) while (leftEnd > start && isCSpace(text.charCodeAt(leftEnd - 1))) leftEnd--;
          if (leftEnd > start) next.push({ start, end: leftEnd });
          next.push({ token: id });
          start = m + needle.length;
          if (attr & Attr.RSTRIP) while (start < end && isCSpace(text.charCodeAt(start))) start++;
        }
        if (start < end) next.push({ start, end });
      }
      spans = next;
    }
    return spans.map((s) => ('token' in s ? s : { text: text.slice(s.start, s.end) }));
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * llama.cpp's three clean-up passes over detokenized bytes, in place as it does them: drop the space
 * before ? ! . , ; drop the spaces around a lone ' ; drop the space before 's 'm 're 've.
 */
function cleanSpaces(input: Uint8Array): Uint8Array {
  const t = Uint8Array.from(input);
  const SP = 0x20;
  const APOS = 0x27;
  let total = t.length;
  {
    const n = total;
    total = n ? 1 : 0;
    for (let i = 1; i < n; i++) {
      const x = t[i]!;
      if (t[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
      t[total++] = x;
    }
  }
  {
    const n = total;
    total = n ? 1 : 0;
    for (let i = 1; i < n; i++) {
      const x = t[i]!;
      if (x === APOS && i + 1 < n && t[i - 1] === SP && t[i + 1] === SP) {
        total--;
        t[++i] = 0;
      }
      t[total++] = x;
    }
  }
  {
    const n = total;
    total = n ? 1 : 0;
    for (let i = 1; i < n; i++) {
      const x = t[i]!;
      if (t[i - 1] === SP && x === APOS && i + 1 < n) {
        const x1 = t[i + 1]!;
        if (x1 === 0x73 || x1 === 0x6d)
          total--; // 's 'm
        else if (i + 2 < n) {
          const x2 = t[i + 2]!;
          if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--; // 're 've
        }
      }
      t[total++] = x;
    }
  }
  return t.subarray(0, total);
}

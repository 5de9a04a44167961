// The benchmark models: one seeded llama (d=512, 8 heads / 4 KV heads, 4 layers, FF 1408) written
// as GGUF in F32, Q8_0, Q4_0 and Q4_K (mixed like a Q4_K_M file) into bench/out/. Add a type to BENCH_TYPES.

import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GGMLType } from '../src/model/gguf.js';
import { quantize } from '../src/model/quant.js';
import { f32, u32, writeGGUF, type MetaValue, type TensorSpec } from '../test/fixtures/gguf-writer.js';
import { bpeVocabMeta, gpt2ByteChars } from '../test/fixtures/vocab.js';
import { randn, rng } from '../test/fixtures/random.js';

const T = GGMLType;

export interface BenchShape {
  dModel: number;
  numHeads: number;
  numKvHeads: number;
  numLayers: number;
  ffDim: number;
  contextLength: number;
  seed: number;
}

/** The shape every benchmark model shares (llama architecture). */
export const BENCH_SHAPE: Readonly<BenchShape> = {
  dModel: 512,
  numHeads: 8,
  numKvHeads: 4,
  numLayers: 4,
  ffDim: 1408,
  contextLength: 2048,
  seed: 2027,
};

/**
 * A model big enough that a real GPU's decode is bound by reading weights, not by dispatch and
 * readback overhead (bench/gpu.ts): d=2048, 16 heads / 4 KV heads (head dim 128), 8 layers, FF 5632
 * (22 × 256, so Q4_K needs no fallback for ffn_down): 361 M matrix weights, 1.45 GB in F32.
 */
export const LARGE_SHAPE: Readonly<BenchShape> = {
  dModel: 2048,
  numHeads: 16,
  numKvHeads: 4,
  numLayers: 8,
  ffDim: 5632,
  contextLength: 4096,
  seed: 2027,
};

export type ShapeName = 'small' | 'large';
export const BENCH_SHAPES: Record<ShapeName, Readonly<BenchShape>> = { small: BENCH_SHAPE, large: LARGE_SHAPE };

export type BenchType = 'f32' | 'q8_0' | 'q4_0' | 'q4_k';
export const BENCH_TYPES: readonly BenchType[] = ['f32', 'q8_0', 'q4_0', 'q4_k'];

/** ggml type of each matrix role; `note` is what the table says about a mixed file. */
export interface TypeMix {
  main: GGMLType;
  embd: GGMLType;
  output: GGMLType;
  down: GGMLType;
  /** general.file_type (llama_ftype). */
  fileType: number;
  note: string;
}

/**
 * Q4_K (and Q6_K) blocks span 256 weights along a row, and ffn_down's rows are 1408 = 5.5 × 256
 * long. llama.cpp's quantizer falls back for such tensors (Q6_K → Q8_0), so the Q4_K model is what
 * a Q4_K_M conversion of this shape gives: Q4_K matrices, Q6_K output, Q8_0 ffn_down.
 */
export const TYPE_MIX: Record<BenchType, TypeMix> = {
  f32: { main: T.F32, embd: T.F32, output: T.F32, down: T.F32, fileType: 0, note: 'all matrices F32' },
  q8_0: { main: T.Q8_0, embd: T.Q8_0, output: T.Q8_0, down: T.Q8_0, fileType: 7, note: 'all matrices Q8_0' },
  q4_0: { main: T.Q4_0, embd: T.Q4_0, output: T.Q4_0, down: T.Q4_0, fileType: 2, note: 'all matrices Q4_0' },
  q4_k: {
    main: T.Q4_K,
    embd: T.Q4_K,
    output: T.Q6_K,
    down: T.Q8_0,
    fileType: 15,
    note: 'Q4_K_M-style: Q4_K matrices, Q6_K output, Q8_0 ffn_down (K=1408 is not a multiple of 256)',
  },
};

/** The ASCII prompt the tokenizer cross-check uses (hearth vs llama.cpp). */
export const TOKENIZER_CHECK_TEXT = "The old lighthouse keeper woke before dawn; it's 7:30 am, 117 steps (and 1,000,000 gulls)!\nDon't rush.";

/**
 * The llama-bpe fixture vocabulary without the tokens that are not complete UTF-8 on their own.
 * wllama's JSON layer throws on invalid UTF-8 in generated text, and a random-weight model emits
 * any token, so the lone bytes 0x80-0xFF (and any merge containing a partial sequence) go; merges
 * that name a removed token go with them; ids after a removed token shift down, and the special
 * token ids are looked up again in the new list. ASCII text tokenizes exactly as before.
 */
export function benchVocabMeta(): Record<string, MetaValue> {
  const base = bpeVocabMeta('llama-bpe');
  const tokens = base['tokenizer.ggml.tokens'] as string[];
  const types = base['tokenizer.ggml.token_type'] as Int32Array;
  const merges = base['tokenizer.ggml.merges'] as string[];
  const byteOf = new Map(gpt2ByteChars().map((c, b) => [c, b]));
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const isWholeUtf8 = (tok: string, type: number): boolean => {
    if (type !== 1) return true; // control tokens are rendered by name, not as bytes
    const bytes = Uint8Array.from(Array.from(tok), (ch) => byteOf.get(ch) ?? 0x80);
    try {
      utf8.decode(bytes);
      return true;
    } catch {
      return false;
    }
  };
  const keptTokens: string[] = [];
  const keptTypes: number[] = [];
  tokens.forEach((tok, i) => {
    if (isWholeUtf8(tok, types[i]!)) {
      keptTokens.push(tok);
      keptTypes.push(types[i]!);
    }
  });
  const kept = new Set(keptTokens);
  const keptMerges = merges.filter((m) => {
    const [a, b] = m.split(' ');
    return a !== undefined && b !== undefined && kept.has(a) && kept.has(b) && kept.has(a + b);
  });
  const id = (t: string): number => {
    const i = keptTokens.indexOf(t);
    if (i < 0) throw new Error(`bench vocabulary lost the special token ${t}`);
    return i;
  };
  const meta: Record<string, MetaValue> = {
    ...base,
    'tokenizer.ggml.tokens': keptTokens,
    'tokenizer.ggml.token_type': Int32Array.from(keptTypes),
    'tokenizer.ggml.merges': keptMerges,
    'tokenizer.ggml.bos_token_id': u32(id('<|begin_of_text|>')),
    'tokenizer.ggml.eos_token_id': u32(id('<|end_of_text|>')),
    'tokenizer.ggml.padding_token_id': u32(id('<|end_of_text|>')),
  };
  return meta;
}

/**
 * The GGUF bytes of one benchmark model; the same seed gives the same weights before quantization
 * in every type. A smaller `shape` gives a quick model with the same vocabulary (the browser test uses one).
 */
export function buildBenchModel(type: BenchType, shape: Readonly<BenchShape> = BENCH_SHAPE): Uint8Array {
  const s = shape;
  const mix = TYPE_MIX[type];
  const r = rng(s.seed);
  const vocab = benchVocabMeta();
  const nVocab = (vocab['tokenizer.ggml.tokens'] as string[]).length;
  const D = s.dModel;
  const hd = D / s.numHeads;
  const meta: Record<string, MetaValue> = {
    'general.architecture': 'llama',
    'general.name': `hearth bench ${type}`,
    'general.alignment': u32(32),
    'general.file_type': u32(mix.fileType),
    'llama.context_length': u32(s.contextLength),
    'llama.embedding_length': u32(D),
    'llama.block_count': u32(s.numLayers),
    'llama.feed_forward_length': u32(s.ffDim),
    'llama.attention.head_count': u32(s.numHeads),
    'llama.attention.head_count_kv': u32(s.numKvHeads),
    'llama.attention.layer_norm_rms_epsilon': f32(1e-5),
    'llama.rope.dimension_count': u32(hd),
    'llama.rope.freq_base': f32(500000),
    ...vocab,
  };
  const tensors: TensorSpec[] = [];
  const mat = (name: string, K: number, N: number, t: GGMLType, std: number): void => {
    tensors.push({ name, dims: [K, N], type: t, data: quantize(t, randn(r, K * N, std)) });
  };
  const vec = (name: string, n: number): void => {
    tensors.push({ name, dims: [n], type: T.F32, data: new Uint8Array(randn(r, n, 0.1, 1).buffer) });
  };
  mat('token_embd.weight', D, nVocab, mix.embd, 1);
  mat('output.weight', D, nVocab, mix.output, 2.5 / Math.sqrt(D));
  vec('output_norm.weight', D);
  for (let i = 0; i < s.numLayers; i++) {
    const b = `blk.${i}.`;
    vec(b + 'attn_norm.weight', D);
    mat(b + 'attn_q.weight', D, s.numHeads * hd, mix.main, 1.5 / Math.sqrt(D));
    mat(b + 'attn_k.weight', D, s.numKvHeads * hd, mix.main, 1.5 / Math.sqrt(D));
    mat(b + 'attn_v.weight', D, s.numKvHeads * hd, mix.main, 1 / Math.sqrt(D));
    mat(b + 'attn_output.weight', s.numHeads * hd, D, mix.main, 0.5 / Math.sqrt(D));
    vec(b + 'ffn_norm.weight', D);
    mat(b + 'ffn_gate.weight', D, s.ffDim, mix.main, 1 / Math.sqrt(D));
    mat(b + 'ffn_up.weight', D, s.ffDim, mix.main, 1 / Math.sqrt(D));
    mat(b + 'ffn_down.weight', s.ffDim, D, mix.down, 0.5 / Math.sqrt(s.ffDim));
  }
  return writeGGUF(meta, tensors, { version: 3 });
}

/** Bump when buildBenchModel changes, so cached files are regenerated. */
const GENERATOR_VERSION = 1;

export const BENCH_OUT = join(dirname(fileURLToPath(import.meta.url)), 'out');

export function benchModelPath(type: BenchType, shape: ShapeName = 'small'): string {
  return join(BENCH_OUT, `hearth-bench-v${GENERATOR_VERSION}${shape === 'small' ? '' : `-${shape}`}-${type}.gguf`);
}

/** Paths of the benchmark models, writing the ones that are missing. */
export function ensureBenchModels(
  types: readonly BenchType[] = BENCH_TYPES,
  log: (s: string) => void = () => undefined,
  shape: ShapeName = 'small',
): Record<BenchType, string> {
  const out = {} as Record<BenchType, string>;
  for (const type of types) {
    const path = benchModelPath(type, shape);
    if (!existsSync(path)) {
      mkdirSync(BENCH_OUT, { recursive: true });
      const t0 = performance.now();
      const bytes = buildBenchModel(type, BENCH_SHAPES[shape]);
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, bytes);
      renameSync(tmp, path);
      log(`wrote ${path} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
    out[type] = path;
  }
  return out;
}

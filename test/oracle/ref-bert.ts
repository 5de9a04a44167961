// The exact reference BERT encoder: every weight dequantized exactly, float64 math, composed from the per-op
// references in src/ref (LayerNorm, GELU, bidirectional attention, pooling). Mirrors src/model/bert.ts.

import { readFileSync } from 'node:fs';
import { bertConfig, type BertConfig } from '../../src/model/bert.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { parseGGUF } from '../../src/model/gguf.js';
import { dequantize } from '../../src/model/quant.js';
import { encoderAttentionRef } from '../../src/ref/encoder-attention.js';
import { geluRef } from '../../src/ref/gelu.js';
import { layerNormRef } from '../../src/ref/layer-norm.js';
import { poolRef } from '../../src/ref/pool.js';

export class RefBert {
  private constructor(
    readonly cfg: BertConfig,
    private readonly t: Map<string, Float32Array>,
  ) {}

  static async load(path: string): Promise<RefBert> {
    const bytes = readFileSync(path);
    const file = await parseGGUF(bufferSource(bytes));
    const t = new Map<string, Float32Array>();
    for (const info of file.tensors) t.set(info.name, dequantize(info.type, bytes.subarray(info.fileOffset, info.fileOffset + info.sizeBytes), info.numElems));
    return new RefBert(bertConfig(file), t);
  }

  private w(name: string): Float32Array {
    const v = this.t.get(name);
    if (!v) throw new Error(`reference: no tensor ${name}`);
    return v;
  }

  /** Y [M, N] = X [M, K] · W[N, K]ᵀ + bias, float64. */
  private linear(x: Float64Array, M: number, K: number, name: string): Float64Array {
    const W = this.w(`${name}.weight`);
    const bias = this.w(`${name}.bias`);
    const N = bias.length;
    const y = new Float64Array(M * N);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = bias[n]!;
        for (let k = 0; k < K; k++) s += x[m * K + k]! * W[n * K + k]!;
        y[m * N + n] = s;
      }
    return y;
  }

  /** The L2-normalized sentence embedding of a token sequence ([CLS] ... [SEP]). */
  embed(tokens: readonly number[]): Float64Array {
    const { dModel: D, numHeads: H, headDim: hd, eps, ffDim: FF } = this.cfg;
    const M = tokens.length;
    const tok = this.w('token_embd.weight');
    const pos = this.w('position_embd.weight');
    const types = this.t.get('token_types.weight');
    let x: Float64Array = new Float64Array(M * D);
    tokens.forEach((id, m) => {
      for (let i = 0; i < D; i++) x[m * D + i] = tok[id * D + i]! + pos[m * D + i]! + (types ? types[i]! : 0);
    });
    x = layerNormRef(x, this.w('token_embd_norm.weight'), this.w('token_embd_norm.bias'), M, D, eps);
    for (let l = 0; l < this.cfg.numLayers; l++) {
      const b = `blk.${l}.`;
      const q = this.linear(x, M, D, b + 'attn_q');
      const k = this.linear(x, M, D, b + 'attn_k');
      const v = this.linear(x, M, D, b + 'attn_v');
      const qkv = new Float64Array(M * 3 * D);
      for (let m = 0; m < M; m++) {
        qkv.set(q.subarray(m * D, (m + 1) * D), m * 3 * D);
        qkv.set(k.subarray(m * D, (m + 1) * D), m * 3 * D + D);
        qkv.set(v.subarray(m * D, (m + 1) * D), m * 3 * D + 2 * D);
      }
      const att = encoderAttentionRef(qkv, { M, numHeads: H, headDim: hd, stride: 3 * D, kOffset: D, vOffset: 2 * D });
      const o = this.linear(att, M, D, b + 'attn_output');
      for (let i = 0; i < o.length; i++) o[i] = o[i]! + x[i]!;
      const h = layerNormRef(o, this.w(b + 'attn_output_norm.weight'), this.w(b + 'attn_output_norm.bias'), M, D, eps);
      const up = geluRef(this.linear(h, M, D, b + 'ffn_up'));
      const down = this.linear(up, M, FF, b + 'ffn_down');
      for (let i = 0; i < down.length; i++) down[i] = down[i]! + h[i]!;
      x = layerNormRef(down, this.w(b + 'layer_output_norm.weight'), this.w(b + 'layer_output_norm.bias'), M, D, eps);
    }
    return poolRef(x, M, D, this.cfg.pooling);
  }
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! ** 2;
    bb += b[i]! ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

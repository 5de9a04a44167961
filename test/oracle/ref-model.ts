// The exact reference forward pass: every weight dequantized exactly, float64 math, composed from
// the per-op references in src/ref. Quantized types are checked against this (llama.cpp quantizes
// activations, so it is not exact for them); add an architecture feature here and in forward.ts.

import { readFileSync } from 'node:fs';
import { bufferSource } from '../../src/model/byte-source.js';
import { modelConfig, type ModelConfig } from '../../src/model/config.js';
import { parseGGUF, type GGUFFile } from '../../src/model/gguf.js';
import { dequantize } from '../../src/model/quant.js';
import { attentionRef } from '../../src/ref/attention.js';
import { matmulDequantRef } from '../../src/ref/matmul.js';
import { rmsNormRef } from '../../src/ref/rms-norm.js';
import { ropeRef } from '../../src/ref/rope.js';
import { swigluRef } from '../../src/ref/swiglu.js';

export class RefModel {
  private kCache: Float64Array[];
  private vCache: Float64Array[];

  private constructor(
    readonly cfg: ModelConfig,
    private readonly t: Map<string, Float32Array>,
    maxPos: number,
  ) {
    const kv = maxPos * cfg.numKvHeads * cfg.headDim;
    this.kCache = Array.from({ length: cfg.numLayers }, () => new Float64Array(kv));
    this.vCache = Array.from({ length: cfg.numLayers }, () => new Float64Array(kv));
  }

  static async load(path: string, maxPos = 256): Promise<RefModel> {
    const bytes = readFileSync(path);
    const file: GGUFFile = await parseGGUF(bufferSource(bytes));
    const cfg = modelConfig(file);
    const t = new Map<string, Float32Array>();
    for (const info of file.tensors) t.set(info.name, dequantize(info.type, bytes.subarray(info.fileOffset, info.fileOffset + info.sizeBytes), info.numElems));
    return new RefModel(cfg, t, maxPos);
  }

  private w(name: string): Float32Array {
    const v = this.t.get(name);
    if (!v) throw new Error(`no tensor ${name}`);
    return v;
  }

  /** Logits of the last of `tokens`, fed at `startPos` (the cache keeps earlier positions). */
  forward(tokens: number[], startPos: number): Float64Array {
    const c = this.cfg;
    const M = tokens.length;
    const D = c.dModel;
    const HD = c.headDim;
    const emb = this.w('token_embd.weight');
    let x: Float64Array = new Float64Array(M * D);
    tokens.forEach((tok, m) => x.set(emb.subarray(tok * D, (tok + 1) * D), m * D));
    const rope = {
      ropeDim: c.ropeDim,
      base: c.ropeBase,
      freqScale: c.ropeFreqScale,
      neox: c.neox,
      ...(this.t.has('rope_freqs.weight') ? { freqFactors: this.w('rope_freqs.weight') } : {}),
    };
    for (let l = 0; l < c.numLayers; l++) {
      const b = `blk.${l}.`;
      const xn = rmsNormRef(x, this.w(b + 'attn_norm.weight'), M, D, c.rmsEps);
      const bias = (n: string): { bias?: Float32Array } => (c.qkvBias ? { bias: this.w(b + n) } : {});
      let q = matmulDequantRef(this.w(b + 'attn_q.weight'), c.numHeads * HD, D, xn, M, bias('attn_q.bias'));
      let k = matmulDequantRef(this.w(b + 'attn_k.weight'), c.numKvHeads * HD, D, xn, M, bias('attn_k.bias'));
      const v = matmulDequantRef(this.w(b + 'attn_v.weight'), c.numKvHeads * HD, D, xn, M, bias('attn_v.bias'));
      q = ropeRef(q, M, c.numHeads, HD, rope, startPos);
      k = ropeRef(k, M, c.numKvHeads, HD, rope, startPos);
      const row = c.numKvHeads * HD;
      this.kCache[l]!.set(k, startPos * row);
      this.vCache[l]!.set(v, startPos * row);
      // The contiguous cache is one block of the whole context.
      const toks = Array.from({ length: M }, (_, m) => ({ pos: startPos + m, blocks: [0] }));
      const att = attentionRef(q, this.kCache[l]!, this.vCache[l]!, toks, this.kCache[l]!.length / row, c);
      const o = matmulDequantRef(this.w(b + 'attn_output.weight'), D, c.numHeads * HD, att, M);
      for (let i = 0; i < x.length; i++) x[i]! += o[i]!;
      const xn2 = rmsNormRef(x, this.w(b + 'ffn_norm.weight'), M, D, c.rmsEps);
      const g = matmulDequantRef(this.w(b + 'ffn_gate.weight'), c.ffDim, D, xn2, M);
      const u = matmulDequantRef(this.w(b + 'ffn_up.weight'), c.ffDim, D, xn2, M);
      const h = swigluRef(g, u);
      const down = matmulDequantRef(this.w(b + 'ffn_down.weight'), D, c.ffDim, h, M);
      for (let i = 0; i < x.length; i++) x[i]! += down[i]!;
    }
    const last = rmsNormRef(x.subarray((M - 1) * D), this.w('output_norm.weight'), 1, D, c.rmsEps);
    x = last;
    const out = this.t.get('output.weight') ?? emb;
    return matmulDequantRef(out, c.vocabSize, D, x, 1);
  }
}

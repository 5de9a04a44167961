// CPU reference of shaders/encoder-attention.wgsl: every token attends to all M tokens of its sequence
// (no mask), float64. Q, K, V are read from packed rows of `stride` elements.

export interface EncoderAttentionRefShape {
  M: number;
  numHeads: number;
  headDim: number;
  stride: number;
  kOffset: number;
  vOffset: number;
}

/** qkv [M, stride] → out [M, numHeads, headDim]. */
export function encoderAttentionRef(qkv: ArrayLike<number>, s: EncoderAttentionRefShape): Float64Array {
  const { M, numHeads: H, headDim: hd, stride } = s;
  const out = new Float64Array(M * H * hd);
  const scale = 1 / Math.sqrt(hd);
  const sc = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    for (let h = 0; h < H; h++) {
      const qb = m * stride + h * hd;
      let mx = -Infinity;
      for (let j = 0; j < M; j++) {
        const kb = j * stride + s.kOffset + h * hd;
        let d = 0;
        for (let i = 0; i < hd; i++) d += qkv[qb + i]! * qkv[kb + i]!;
        sc[j] = d * scale;
        mx = Math.max(mx, sc[j]!);
      }
      let sum = 0;
      for (let j = 0; j < M; j++) sum += sc[j] = Math.exp(sc[j]! - mx);
      const ob = (m * H + h) * hd;
      for (let j = 0; j < M; j++) {
        const w = sc[j]! / sum;
        const vb = j * stride + s.vOffset + h * hd;
        for (let i = 0; i < hd; i++) out[ob + i] = out[ob + i]! + w * qkv[vb + i]!;
      }
    }
  }
  return out;
}

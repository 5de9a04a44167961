// CPU reference of shaders/attention.wgsl: causal grouped-query attention of M step tokens over a
// contiguous KV cache, float64 softmax. Variants (sliding window, ALiBi, soft-capping) add options here.

export interface AttentionRefShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * Q [M, numHeads, headDim], caches [>= startPos + M, numKvHeads, headDim] → O [M, numHeads, headDim].
 * Token m sits at position startPos + m and attends to keys 0 ..= startPos + m; head h reads KV head
 * h / (numHeads / numKvHeads); scores are scaled by 1 / sqrt(headDim).
 */
export function attentionRef(
  q: ArrayLike<number>,
  kCache: ArrayLike<number>,
  vCache: ArrayLike<number>,
  M: number,
  startPos: number,
  shape: AttentionRefShape,
): Float64Array {
  const { numHeads, numKvHeads, headDim: hd } = shape;
  const group = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(hd);
  const kvStride = numKvHeads * hd;
  const out = new Float64Array(M * numHeads * hd);
  for (let m = 0; m < M; m++) {
    const nKeys = startPos + m + 1;
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / group);
      const qb = (m * numHeads + h) * hd;
      const s = new Float64Array(nKeys);
      let mx = -Infinity;
      for (let j = 0; j < nKeys; j++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[qb + i]! * kCache[j * kvStride + kvh * hd + i]!;
        s[j] = d * scale;
        mx = Math.max(mx, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < nKeys; j++) {
        s[j] = Math.exp(s[j]! - mx);
        z += s[j]!;
      }
      for (let i = 0; i < hd; i++) {
        let acc = 0;
        for (let j = 0; j < nKeys; j++) acc += s[j]! * vCache[j * kvStride + kvh * hd + i]!;
        out[qb + i] = acc / z;
      }
    }
  }
  return out;
}

// CPU reference of shaders/attention.wgsl: causal grouped-query attention of a step's tokens over a
// paged KV cache, float64 softmax. Variants (sliding window, ALiBi, soft-capping) add options here.

export interface AttentionRefShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/** A query token: its position and its sequence's block table; a tree node also its slot and mask (src/spec/tree.ts nodeMeta). */
export interface RefToken {
  pos: number;
  blocks: readonly number[];
  /** KV slot (default pos): keys 0 ..= slot. */
  slot?: number;
  /** Visibility of keys slot - b, b < 32 (default all). */
  mask?: number;
}

/**
 * Q [M, numHeads, headDim], pools [numBlocks * blockSize, numKvHeads, headDim] → O [M, numHeads, headDim].
 * Token m attends to keys 0 ..= its position of its own sequence, key j in row
 * blocks[j / blockSize] * blockSize + j % blockSize; head h reads KV head h / (numHeads /
 * numKvHeads); scores are scaled by 1 / sqrt(headDim).
 */
export function attentionRef(
  q: ArrayLike<number>,
  kPool: ArrayLike<number>,
  vPool: ArrayLike<number>,
  tokens: readonly RefToken[],
  blockSize: number,
  shape: AttentionRefShape,
): Float64Array {
  const { numHeads, numKvHeads, headDim: hd } = shape;
  const group = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(hd);
  const kvStride = numKvHeads * hd;
  const M = tokens.length;
  const out = new Float64Array(M * numHeads * hd);
  for (let m = 0; m < M; m++) {
    const { pos, blocks, slot = pos, mask = 0xffffffff } = tokens[m]!;
    const nKeys = slot + 1;
    const seen = (j: number): boolean => slot - j >= 32 || ((mask >>> (slot - j)) & 1) === 1;
    const row = (j: number): number => blocks[Math.floor(j / blockSize)]! * blockSize + (j % blockSize);
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / group);
      const qb = (m * numHeads + h) * hd;
      const s = new Float64Array(nKeys);
      let mx = -Infinity;
      for (let j = 0; j < nKeys; j++) {
        let d = 0;
        const kb = row(j) * kvStride + kvh * hd;
        for (let i = 0; i < hd; i++) d += q[qb + i]! * kPool[kb + i]!;
        s[j] = seen(j) ? d * scale : -Infinity;
        mx = Math.max(mx, s[j]!);
      }
      let z = 0;
      for (let j = 0; j < nKeys; j++) {
        s[j] = Math.exp(s[j]! - mx);
        z += s[j]!;
      }
      for (let i = 0; i < hd; i++) {
        let acc = 0;
        for (let j = 0; j < nKeys; j++) acc += s[j]! * vPool[row(j) * kvStride + kvh * hd + i]!;
        out[qb + i] = acc / z;
      }
    }
  }
  return out;
}

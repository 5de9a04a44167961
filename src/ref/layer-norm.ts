// CPU reference of shaders/layer-norm.wgsl: Y = (X - mean) / sqrt(var + eps) * weight + bias per row, float64.
// var is the biased (population) variance, as ggml_norm computes it.

/** X [M, D] → Y [M, D]. */
export function layerNormRef(x: ArrayLike<number>, weight: ArrayLike<number>, bias: ArrayLike<number>, M: number, D: number, eps: number): Float64Array {
  const y = new Float64Array(M * D);
  for (let m = 0; m < M; m++) {
    let s = 0;
    for (let i = 0; i < D; i++) s += x[m * D + i]!;
    const mean = s / D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += (x[m * D + i]! - mean) ** 2;
    const scale = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[m * D + i] = (x[m * D + i]! - mean) * scale * weight[i]! + bias[i]!;
  }
  return y;
}

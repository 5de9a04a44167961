// CPU reference of shaders/rms-norm.wgsl: Y = X / sqrt(mean(X^2) + eps) * weight per row, float64.
// `gather` mirrors the kernel's lm-head mode; a new norm variant (e.g. LayerNorm) gets its own file.

/** X [M, D] → Y [M, D], or [gather.length, D] holding rows gather[0], gather[1], ... */
export function rmsNormRef(x: ArrayLike<number>, weight: ArrayLike<number>, M: number, D: number, eps: number, gather?: readonly number[]): Float64Array {
  const rows = gather ?? Array.from({ length: M }, (_, m) => m);
  const y = new Float64Array(rows.length * D);
  rows.forEach((m, o) => {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[m * D + i]! ** 2;
    const scale = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[o * D + i] = x[m * D + i]! * scale * weight[i]!;
  });
  return y;
}

// CPU reference of shaders/gelu.wgsl: llama.cpp's GELU (tanh form, 0 below -10, identity above 10), float64.
// llama.cpp's CPU backend also rounds through an f16 table; that is its own error, not part of the op.

export function geluScalar(x: number): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * x * (1 + 0.044715 * x * x)));
}

export function geluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => geluScalar(x[i]!));
}

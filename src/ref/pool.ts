// CPU reference of shaders/pool.wgsl: mean / first / last row of X [M, D], then L2-normalized, float64.

import type { PoolMode } from '../kernels/pool.js';

export function poolRef(x: ArrayLike<number>, M: number, D: number, mode: PoolMode): Float64Array {
  const v = new Float64Array(D);
  if (mode === 'mean') {
    for (let m = 0; m < M; m++) for (let c = 0; c < D; c++) v[c] = v[c]! + x[m * D + c]!;
    for (let c = 0; c < D; c++) v[c] = v[c]! / M;
  } else {
    const row = mode === 'cls' ? 0 : M - 1;
    for (let c = 0; c < D; c++) v[c] = x[row * D + c]!;
  }
  return l2Normalize(v);
}

/** v / max(||v||, 1e-12), as the kernel and sentence-transformers' Normalize do. */
export function l2Normalize(v: ArrayLike<number>): Float64Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! ** 2;
  const inv = 1 / Math.max(Math.sqrt(ss), 1e-12);
  return Float64Array.from({ length: v.length }, (_, i) => v[i]! * inv);
}

// CPU reference of shaders/rope.wgsl: rotary embedding of [M, numHeads, headDim] at positions startPos + m,
// angles computed here in float64 (not from the kernel's table). New scaling schemes extend ropeAngle().

import type { RopeConfig } from '../kernels/rope.js';

/** Rotation angle of frequency pair i at position pos (llama.cpp: pos * freqScale * base^(-2i/ropeDim) / freqFactor[i]). */
export function ropeAngle(cfg: RopeConfig, pos: number, i: number): number {
  return (pos * cfg.freqScale * Math.pow(cfg.base, (-2 * i) / cfg.ropeDim)) / (cfg.freqFactors?.[i] ?? 1);
}

/**
 * Returns the rotated copy of X. Pairs are (2i, 2i + 1) normally and (i, i + ropeDim / 2) for neox;
 * dims >= ropeDim pass through unchanged.
 */
export function ropeRef(x: ArrayLike<number>, M: number, numHeads: number, headDim: number, cfg: RopeConfig, startPos: number): Float64Array {
  const y = Float64Array.from(x);
  const half = cfg.ropeDim / 2;
  for (let m = 0; m < M; m++) {
    for (let h = 0; h < numHeads; h++) {
      const base = (m * numHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const theta = ropeAngle(cfg, startPos + m, i);
        const c = Math.cos(theta);
        const s = Math.sin(theta);
        const a = cfg.neox ? base + i : base + 2 * i;
        const b = cfg.neox ? base + i + half : a + 1;
        const x0 = x[a]!;
        const x1 = x[b]!;
        y[a] = x0 * c - x1 * s;
        y[b] = x0 * s + x1 * c;
      }
    }
  }
  return y;
}

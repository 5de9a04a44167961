// CPU reference of shaders/matmul.wgsl (matvec, matmul_tiled, gather_rows): plain loops, float64.
// Weights are given as GGUF bytes and dequantized exactly (model/quant.ts); a new epilogue flag adds an option here.

import { dequantize } from '../model/quant.js';
import type { GGMLType } from '../model/gguf.js';

/** A weight of N rows of K in GGUF bytes (what a model file holds). */
export interface RefWeight {
  type: GGMLType;
  bytes: Uint8Array;
  K: number;
  N: number;
}

export interface MatmulRefOptions {
  /** [N] added to every output row (flags bit 0). */
  bias?: Float32Array;
  /** [M, N] previous contents of Y, added to the result (flags bit 1: accumulate). */
  accumulate?: Float32Array;
}

/** The weight's exact values as the CPU path sees them: [N, K]. */
export function dequantWeight(w: RefWeight): Float32Array {
  return dequantize(w.type, w.bytes, w.N * w.K);
}

/** Y[m, n] = sum_k W[n, k] * X[m, k] (+ bias[n]) (+ Yprev[m, n]) for X [M, K] f32; returns [M, N]. */
export function matmulRef(w: RefWeight, x: Float32Array, M: number, opts: MatmulRefOptions = {}): Float64Array {
  return matmulDequantRef(dequantWeight(w), w.N, w.K, x, M, opts);
}

/** matmulRef on already dequantized weights W [N, K]. */
export function matmulDequantRef(wf: ArrayLike<number>, N: number, K: number, x: ArrayLike<number>, M: number, opts: MatmulRefOptions = {}): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += wf[n * K + k]! * x[m * K + k]!;
      if (opts.bias) acc += opts.bias[n]!;
      if (opts.accumulate) acc += opts.accumulate[m * N + n]!;
      y[m * N + n] = acc;
    }
  }
  return y;
}

/** Embedding lookup: Y[m, :] = W[min(tokenIds[m], N - 1), :], dequantized; returns [M, K]. */
export function gatherRowsRef(w: RefWeight, tokenIds: ArrayLike<number>): Float32Array {
  const wf = dequantWeight(w);
  const y = new Float32Array(tokenIds.length * w.K);
  for (let m = 0; m < tokenIds.length; m++) {
    // The shader clamps out-of-range ids to the last row rather than reading past the buffer.
    const row = Math.min(tokenIds[m]!, w.N - 1);
    y.set(wf.subarray(row * w.K, (row + 1) * w.K), m * w.K);
  }
  return y;
}

// Quantized block formats on the CPU (F32, F16, Q4_0, Q8_0, Q4_K, Q6_K): f16 conversion, exact dequantization,
// ggml-exact quantizers (for fixtures) and the repacking into the 4-byte-aligned GPU layout. To add a type: list it in
// QUANT_TYPES, add a decoder and a quantizer case, and give it a split layout in splitStride() if its blocks are not 4-byte multiples.

import { assert, EngineError } from '../api/errors.js';
import { GGML_TYPES, GGMLType } from './gguf.js';

// ---------------------------------------------------------------------------------------------
// f16 <-> f32

/** IEEE half bits → the (exactly representable) number. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/**
 * Number → IEEE half bits, as ggml's GGML_FP32_TO_FP16 does it: the input is first taken as an f32
 * (ggml's argument type), then rounded to nearest even; overflow gives ±inf, NaN gives 0x7e00.
 */
export function f32ToF16(x: number): number {
  cvtF32[0] = x;
  return f32BitsToF16(cvtU32[0]!);
}

/** f32 bits → half bits, round to nearest even (ggml's ggml_compute_fp32_to_fp16 semantics). */
export function f32BitsToF16(w: number): number {
  const sign = (w >>> 16) & 0x8000;
  const exp = (w >>> 23) & 0xff;
  const mant = w & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  if (exp >= 143) return sign | 0x7c00; // >= 2^16: beyond the largest half even before rounding
  if (exp >= 113) {
    // Normal half. A carry out of the mantissa bumps the exponent, up to inf (0x7c00), as it should.
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  // Subnormal half (or zero): value = m * 2^(exp-150) = (m >> shift) units of 2^-24.
  if (exp < 102) return sign; // below 2^-25: rounds to zero (2^-25 itself ties to even zero)
  const m = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  let h = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1) !== 0)) h++;
  return sign | h;
}

let f16Table: Float32Array | undefined;
/** All 65536 halves as f32, built on first use (256 KiB). */
function f16Lut(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** Bulk half bits → f32. */
export function f16ArrayToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  assert(dst.length >= src.length, 'f16ArrayToF32: destination too short');
  const lut = f16Lut();
  for (let i = 0; i < src.length; i++) dst[i] = lut[src[i]!]!;
  return dst;
}

/** Bulk f32 → half bits (round to nearest even). */
export function f32ArrayToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  assert(dst.length >= src.length, 'f32ArrayToF16: destination too short');
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) dst[i] = f32BitsToF16(bits[i]!);
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Types and layouts

/** The tensor types hearth reads; every function here handles exactly these. */
export const QUANT_TYPES: readonly GGMLType[] = [GGMLType.F32, GGMLType.F16, GGMLType.Q4_0, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.Q6_K];

function unsupported(type: GGMLType, what: string): EngineError {
  const name = GGML_TYPES.get(type)?.name ?? `type ${String(type)}`;
  return new EngineError(
    'UNSUPPORTED_TENSOR_TYPE',
    `hearth cannot ${what} ggml tensors of type ${name} (${String(type)}). Supported: F32, F16, Q4_0, Q8_0, Q4_K, Q6_K; re-quantize the model to one of them.`,
    { type },
  );
}

interface BlockInfo {
  blockElems: number;
  blockBytes: number;
}

function blockInfo(type: GGMLType, what: string): BlockInfo {
  const info = GGML_TYPES.get(type);
  if (!info || !QUANT_TYPES.includes(type)) throw unsupported(type, what);
  return info;
}

function numBlocks(type: GGMLType, numElems: number, what: string): { nb: number; info: BlockInfo } {
  const info = blockInfo(type, what);
  assert(
    Number.isInteger(numElems) && numElems >= 0 && numElems % info.blockElems === 0,
    `${what}: ${numElems} elements is not a whole number of ${info.blockElems}-element blocks`,
  );
  return { nb: numElems / info.blockElems, info };
}

const roundUp4 = (n: number): number => Math.ceil(n / 4) * 4;

/**
 * Where a split type keeps its per-block payload (region A) on the GPU: bytes per block. The f16
 * scale `d` of every block moves to region B, so payloads stay 4-byte aligned for array<u32> reads.
 */
function splitStride(type: GGMLType): number | undefined {
  switch (type) {
    case GGMLType.Q4_0:
      return 16; // qs[16]
    case GGMLType.Q8_0:
      return 32; // qs[32]
    case GGMLType.Q6_K:
      return 208; // ql[128] qh[64] scales[16]
    default:
      return undefined; // F32, F16, Q4_K: GPU bytes are the GGUF bytes
  }
}

const rd16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);

// ---------------------------------------------------------------------------------------------
// Dequantization. Block decoders take the offsets of their fields, so the GGUF layout and the GPU
// layout share one decoder. The arithmetic follows ggml's dequantize_row_* in f32, op for op.

function decodeQ4_0(b: Uint8Array, qs: number, dOff: number, out: Float32Array, o: number): void {
  const d = f16Lut()[rd16(b, dOff)]!;
  for (let j = 0; j < 16; j++) {
    const q = b[qs + j]!;
    out[o + j] = ((q & 0xf) - 8) * d; // exact: 4-bit × 11-bit
    out[o + j + 16] = ((q >>> 4) - 8) * d;
  }
}

function decodeQ8_0(b: Uint8Array, qs: number, dOff: number, out: Float32Array, o: number): void {
  const d = f16Lut()[rd16(b, dOff)]!;
  for (let j = 0; j < 32; j++) out[o + j] = ((b[qs + j]! << 24) >> 24) * d; // exact: 8-bit × 11-bit
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at s. */
function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j]! & 63, b[s + j + 4]! & 63];
  const sc = (b[s + j + 4]! & 0xf) | ((b[s + j - 4]! >>> 6) << 4);
  const m = (b[s + j + 4]! >>> 4) | ((b[s + j]! >>> 6) << 4);
  return [sc, m];
}

/** Q4_K block {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]} at byte p. */
function decodeQ4_K(b: Uint8Array, p: number, out: Float32Array, o: number): void {
  const lut = f16Lut();
  const d = lut[rd16(b, p)]!;
  const dmin = lut[rd16(b, p + 2)]!;
  const s = p + 4;
  const qs = p + 16;
  for (let c = 0; c < 4; c++) {
    const [sc1, m1] = scaleMinK4(b, s, 2 * c);
    const [sc2, m2] = scaleMinK4(b, s, 2 * c + 1);
    // d*sc and d*sc*q are exact in f32 (11+6+4 bits), so only the subtraction rounds, as in ggml.
    const d1 = d * sc1;
    const mm1 = dmin * m1;
    const d2 = d * sc2;
    const mm2 = dmin * m2;
    const q = qs + 32 * c;
    const y = o + 64 * c;
    for (let l = 0; l < 32; l++) {
      const v = b[q + l]!;
      out[y + l] = d1 * (v & 0xf) - mm1;
      out[y + l + 32] = d2 * (v >>> 4) - mm2;
    }
  }
}

/** Q6_K block {u8 ql[128]; u8 qh[64]; i8 scales[16]} at ql..; d read from dOff. */
function decodeQ6_K(b: Uint8Array, ql0: number, dOff: number, out: Float32Array, o: number): void {
  const d = f16Lut()[rd16(b, dOff)]!;
  const f = Math.fround;
  for (let half = 0; half < 2; half++) {
    const ql = ql0 + 64 * half;
    const qh = ql0 + 128 + 32 * half;
    const sc = ql0 + 192 + 8 * half;
    const y = o + 128 * half;
    for (let l = 0; l < 32; l++) {
      const is = l >>> 4;
      const a = b[ql + l]!;
      const c = b[ql + l + 32]!;
      const h = b[qh + l]!;
      const q1 = ((a & 0xf) | ((h & 3) << 4)) - 32;
      const q2 = ((c & 0xf) | (((h >>> 2) & 3) << 4)) - 32;
      const q3 = ((a >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
      const q4 = ((c >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
      // ggml: (d * sc) * q in f32; d*sc is exact, the product with q may round once.
      out[y + l] = f(d * ((b[sc + is]! << 24) >> 24)) * q1;
      out[y + l + 32] = f(d * ((b[sc + is + 2]! << 24) >> 24)) * q2;
      out[y + l + 64] = f(d * ((b[sc + is + 4]! << 24) >> 24)) * q3;
      out[y + l + 96] = f(d * ((b[sc + is + 6]! << 24) >> 24)) * q4;
    }
  }
}

function decodeF32(bytes: Uint8Array, n: number): Float32Array<ArrayBuffer> {
  // Copy into a fresh, aligned buffer (Uint8Array's slice: a Node Buffer's own slice() is a view, not a
  // copy). GGUF and WebGPU are little-endian, as is every JS host we run on.
  return new Float32Array(Uint8Array.prototype.slice.call(bytes, 0, n * 4).buffer, 0, n);
}

function decodeF16(bytes: Uint8Array, n: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  const lut = f16Lut();
  for (let i = 0; i < n; i++) out[i] = lut[rd16(bytes, 2 * i)]!;
  return out;
}

/**
 * Dequantize `numElems` elements of GGUF-layout tensor bytes, bit-exact with ggml's dequantize_row_*.
 * @throws EngineError UNSUPPORTED_TENSOR_TYPE for types other than F32, F16, Q4_0, Q8_0, Q4_K, Q6_K.
 */
export function dequantize(type: GGMLType, bytes: Uint8Array, numElems: number): Float32Array<ArrayBuffer> {
  const { nb, info } = numBlocks(type, numElems, 'dequantize');
  assert(bytes.length >= nb * info.blockBytes, `dequantize: ${bytes.length} bytes, need ${nb * info.blockBytes}`);
  if (type === GGMLType.F32) return decodeF32(bytes, numElems);
  if (type === GGMLType.F16) return decodeF16(bytes, numElems);
  const out = new Float32Array(numElems);
  switch (type) {
    case GGMLType.Q4_0:
      for (let i = 0; i < nb; i++) decodeQ4_0(bytes, 18 * i + 2, 18 * i, out, 32 * i);
      return out;
    case GGMLType.Q8_0:
      for (let i = 0; i < nb; i++) decodeQ8_0(bytes, 34 * i + 2, 34 * i, out, 32 * i);
      return out;
    case GGMLType.Q4_K:
      for (let i = 0; i < nb; i++) decodeQ4_K(bytes, 144 * i, out, 256 * i);
      return out;
    case GGMLType.Q6_K:
      for (let i = 0; i < nb; i++) decodeQ6_K(bytes, 210 * i, 210 * i + 208, out, 256 * i);
      return out;
    default:
      throw unsupported(type, 'dequantize');
  }
}

// ---------------------------------------------------------------------------------------------
// Quantization, following ggml's quantize_row_*_ref in f32 arithmetic (Math.fround after every op),
// so that fixtures match what llama.cpp's own quantizer would write.

const f = Math.fround;
/** ggml's nearest_int: round half to even via the 1.5·2^23 trick (valid for |v| < 2^22). */
const nearestInt = (v: number): number => f(v + 12582912) - 12582912;
/** C roundf: half away from zero. */
const roundAway = (v: number): number => (v < 0 ? -Math.round(-v) : Math.round(v));
const GROUP_MAX_EPS = f(1e-15);

function quantizeQ4_0(x: Float32Array, out: Uint8Array): void {
  const nb = x.length / 32;
  for (let i = 0; i < nb; i++) {
    const xo = 32 * i;
    const p = 18 * i;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = f(max / -8);
    const id = d !== 0 ? f(1 / d) : 0;
    const h = f32ToF16(d);
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) {
      const x0 = f(x[xo + j]! * id);
      const x1 = f(x[xo + 16 + j]! * id);
      const q0 = Math.min(15, Math.trunc(f(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(f(x1 + 8.5)));
      out[p + 2 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
    }
  }
}

function quantizeQ8_0(x: Float32Array, out: Uint8Array): void {
  const nb = x.length / 32;
  for (let i = 0; i < nb; i++) {
    const xo = 32 * i;
    const p = 34 * i;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]!));
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    const h = f32ToF16(d);
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
    for (let j = 0; j < 32; j++) out[p + 2 + j] = roundAway(f(x[xo + j]! * id)) & 0xff;
  }
}

/**
 * ggml's make_qkx2_quants: an asymmetric (scale, min) fit of n values to 0..nmax, with a small grid
 * search over the scale. Writes levels to L[lo..lo+n); returns [scale, -min].
 */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): [number, number] {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i]!;
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
    L[lo + i] = l;
    const diff = f(f(f(scale * l) + min) - xi);
    bestError = f(bestError + f(weights[i]! * f(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    // min moves when a step wins, and ggml re-reads it here: the grid is relative to the current fit.
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
      Laux[i] = l;
      const wl = f(weights[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * xi));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        curError = f(curError + f(weights[i]! * f(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

function quantizeQ4_K(x: Float32Array, out: Uint8Array): void {
  const nb = x.length / 256;
  const L = new Uint8Array(256);
  const Laux = new Uint8Array(32);
  const weights = new Float32Array(32);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let i = 0; i < nb; i++) {
    const xo = 256 * i;
    const p = 144 * i;
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const sx = xo + 32 * j;
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[sx + l]! * x[sx + l]!));
      const avX = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = avX + Math.abs(x[sx + l]!); // Float32Array store rounds
      const [sc, mn] = makeQkx2Quants(32, 15, x, sx, weights, L, 32 * j, Laux, -1, f(0.1), 20);
      scales[j] = sc;
      mins[j] = mn;
      if (scales[j]! > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    const s = p + 4;
    for (let k = 0; k < 12; k++) out[s + k] = 0;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
      const lm = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
      if (j < 4) {
        out[s + j] = ls;
        out[s + j + 4] = lm;
      } else {
        out[s + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        out[s + j - 4] = out[s + j - 4]! | ((ls >>> 4) << 6);
        out[s + j] = out[s + j]! | ((lm >>> 4) << 6);
      }
    }
    const hd = f32ToF16(f(maxScale / 63));
    const hm = f32ToF16(f(maxMin / 63));
    out[p] = hd & 0xff;
    out[p + 1] = hd >>> 8;
    out[p + 2] = hm & 0xff;
    out[p + 3] = hm >>> 8;
    const dAll = f16ToF32(hd);
    const mAll = f16ToF32(hm);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(out, s, j);
      const d = f(dAll * sc);
      if (d === 0) continue; // ggml keeps make_qkx2_quants' levels here
      const dm = f(mAll * m);
      for (let ii = 0; ii < 32; ii++) {
        const l = nearestInt(f(f(x[xo + 32 * j + ii]! + dm) / d));
        L[32 * j + ii] = Math.max(0, Math.min(15, l));
      }
    }
    const qs = p + 16;
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) out[qs + 32 * c + l] = L[64 * c + l]! | (L[64 * c + l + 32]! << 4);
    }
  }
}

/**
 * ggml's make_qx_quants with rmse_type 1 and no importance weights (weights x²): a symmetric fit of
 * n values to -nmax..nmax-1 with a grid search; levels + nmax go to L[lo..lo+n). Returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  const clampL = (v: number): number => Math.max(-nmax, Math.min(nmax - 1, v));
  let iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = clampL(nearestInt(f(iscale * xi)));
    L[lo + i] = l + nmax;
    const w = f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 !== 0 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = clampL(nearestInt(f(iscale * xi)));
      const w = f(xi * xi);
      sumlx = f(sumlx + f(f(w * xi) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = clampL(nearestInt(f(iscale * x[xo + i]!))) + nmax;
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

function quantizeQ6_K(x: Float32Array, out: Uint8Array): void {
  const nb = x.length / 256;
  const L = new Uint8Array(256);
  const scales = new Float32Array(16);
  for (let i = 0; i < nb; i++) {
    const xo = 256 * i;
    const p = 210 * i;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      scales[ib] = makeQxQuants(16, 32, x, xo + 16 * ib, L, 16 * ib);
      const abs = Math.abs(scales[ib]!);
      if (abs > maxAbsScale) {
        maxAbsScale = abs;
        maxScale = scales[ib]!;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      out.fill(0, p, p + 210);
      continue;
    }
    const iscale = f(-128 / maxScale);
    const hd = f32ToF16(f(1 / iscale));
    out[p + 208] = hd & 0xff;
    out[p + 209] = hd >>> 8;
    const sc = new Int8Array(16);
    for (let ib = 0; ib < 16; ib++) {
      sc[ib] = Math.min(127, nearestInt(f(iscale * scales[ib]!))); // Int8Array store wraps like C's int8_t
      out[p + 192 + ib] = sc[ib]! & 0xff;
    }
    const dAll = f16ToF32(hd);
    for (let j = 0; j < 16; j++) {
      const d = f(dAll * sc[j]!);
      if (d === 0) continue; // ggml keeps make_qx_quants' levels here
      for (let ii = 0; ii < 16; ii++) {
        const l = nearestInt(f(x[xo + 16 * j + ii]! / d));
        L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    for (let half = 0; half < 2; half++) {
      const ql = p + 64 * half;
      const qh = p + 128 + 32 * half;
      const Lo = 128 * half;
      for (let l = 0; l < 32; l++) {
        const a = L[Lo + l]!;
        const b = L[Lo + l + 32]!;
        const c = L[Lo + l + 64]!;
        const e = L[Lo + l + 96]!;
        out[ql + l] = (a & 0xf) | ((c & 0xf) << 4);
        out[ql + l + 32] = (b & 0xf) | ((e & 0xf) << 4);
        out[qh + l] = (a >>> 4) | ((b >>> 4) << 2) | ((c >>> 4) << 4) | ((e >>> 4) << 6);
      }
    }
  }
}

/**
 * Quantize f32 values into GGUF-layout bytes of `type`, following ggml's reference quantizers
 * (quantize_row_{q4_0,q8_0,q4_K,q6_K}_ref) in f32 arithmetic. For fixtures: llama.cpp and hearth
 * both load the result. `values.length` must be a whole number of blocks (32 or 256 elements).
 * @throws EngineError UNSUPPORTED_TENSOR_TYPE for other types.
 */
export function quantize(type: GGMLType, values: Float32Array): Uint8Array<ArrayBuffer> {
  const { nb, info } = numBlocks(type, values.length, 'quantize');
  const out = new Uint8Array(nb * info.blockBytes);
  switch (type) {
    case GGMLType.F32:
      out.set(new Uint8Array(Float32Array.from(values).buffer));
      return out;
    case GGMLType.F16:
      out.set(new Uint8Array(f32ArrayToF16(values).buffer));
      return out;
    case GGMLType.Q4_0:
      quantizeQ4_0(values, out);
      return out;
    case GGMLType.Q8_0:
      quantizeQ8_0(values, out);
      return out;
    case GGMLType.Q4_K:
      quantizeQ4_K(values, out);
      return out;
    case GGMLType.Q6_K:
      quantizeQ6_K(values, out);
      return out;
    default:
      throw unsupported(type, 'quantize');
  }
}

// ---------------------------------------------------------------------------------------------
// GPU layout. Weights stay quantized on the GPU and WGSL reads them as array<u32>, so every field
// must start on a 4-byte boundary. F32, F16 and Q4_K already do (Q4_K blocks are 144 bytes) and keep
// their GGUF bytes. Q4_0 (18-byte blocks), Q8_0 (34) and Q6_K (210) put their 2-byte scale `d` in a
// separate region B after all the payloads (region A):
//   Q4_0: A = qs[16] of block i at 16*i;                     B at 16*nb: d of block i at B + 2*i
//   Q8_0: A = qs[32] of block i at 32*i;                     B at 32*nb, 2 bytes per block
//   Q6_K: A = ql[128] qh[64] scales[16] of block i at 208*i; B at 208*nb, 2 bytes per block
// sizeBytes is rounded up to 4 and never exceeds the GGUF size rounded up to 4.

export interface GpuLayout {
  sizeBytes: number;
  /** byte offset of the f16 scale region (0 when none) */
  scaleOffsetBytes: number;
}

/** The GPU buffer size and scale-region offset for a tensor of `numElems` elements. */
export function gpuLayout(type: GGMLType, numElems: number): GpuLayout {
  const { nb, info } = numBlocks(type, numElems, 'lay out on the GPU');
  const stride = splitStride(type);
  if (stride === undefined) return { sizeBytes: roundUp4(nb * info.blockBytes), scaleOffsetBytes: 0 };
  return { sizeBytes: roundUp4(nb * (stride + 2)), scaleOffsetBytes: nb * stride };
}

/**
 * The block multiple that chunked repacking needs: every chunk but the last must start on, and span,
 * a multiple of this many blocks so that each write's offset and length are multiples of 4.
 * 2 for the types whose 2-byte items would otherwise straddle a u32 (F16 elements; Q4_0, Q8_0, Q6_K scales), else 1.
 * Any multiple of it is a valid chunk size.
 */
export function repackChunkBlocks(type: GGMLType): number {
  blockInfo(type, 'lay out on the GPU');
  return type === GGMLType.F32 || type === GGMLType.Q4_K ? 1 : 2;
}

/**
 * Repack whole blocks [firstBlock, firstBlock + n) given as GGUF bytes (`src`, n blocks long) into
 * the GPU layout; returns the writes to make (for GPUQueue.writeBuffer). Requirements: `firstBlock`
 * is a multiple of repackChunkBlocks(type), and so is n unless the chunk ends the tensor
 * (firstBlock + n === totalBlocks). Every write's offset and length are multiples of 4; the last write
 * of a region is zero-padded. A write's data may alias `src`.
 */
export function repackBlocks(
  type: GGMLType,
  src: Uint8Array,
  firstBlock: number,
  totalBlocks: number,
): { offsetBytes: number; data: Uint8Array<ArrayBuffer> }[] {
  const info = blockInfo(type, 'lay out on the GPU');
  const n = src.length / info.blockBytes;
  const multiple = repackChunkBlocks(type);
  const isLast = firstBlock + n === totalBlocks;
  assert(Number.isInteger(n), `repackBlocks: ${src.length} bytes is not a whole number of ${info.blockBytes}-byte blocks`);
  assert(
    Number.isInteger(firstBlock) && firstBlock >= 0 && firstBlock + n <= totalBlocks,
    `repackBlocks: blocks ${firstBlock}..${firstBlock + n} outside 0..${totalBlocks}`,
  );
  assert(
    firstBlock % multiple === 0 && (isLast || n % multiple === 0),
    `repackBlocks: chunk [${firstBlock}, +${n}) of ${info.blockBytes}-byte blocks must start and (unless last) span a multiple of ${multiple} blocks`,
  );
  if (n === 0) return [];
  const stride = splitStride(type);
  if (stride === undefined) {
    const offsetBytes = firstBlock * info.blockBytes;
    // A view of src, no copy, unless its memory is shared (writeBuffer takes no SharedArrayBuffer).
    const buffer = src.buffer;
    if (src.length % 4 === 0 && buffer instanceof ArrayBuffer) return [{ offsetBytes, data: new Uint8Array(buffer, src.byteOffset, src.length) }];
    const data = new Uint8Array(roundUp4(src.length));
    data.set(src);
    return [{ offsetBytes, data }];
  }
  const { scaleOffsetBytes } = gpuLayout(type, totalBlocks * info.blockElems);
  const payload = new Uint8Array(n * stride);
  const scales = new Uint8Array(roundUp4(2 * n));
  // GGUF: Q4_0/Q8_0 put d first, then the payload; Q6_K puts the payload first, d last.
  const dAt = type === GGMLType.Q6_K ? stride : 0;
  const payloadAt = type === GGMLType.Q6_K ? 0 : 2;
  for (let i = 0; i < n; i++) {
    const p = i * info.blockBytes;
    payload.set(src.subarray(p + payloadAt, p + payloadAt + stride), i * stride);
    scales[2 * i] = src[p + dAt]!;
    scales[2 * i + 1] = src[p + dAt + 1]!;
  }
  return [
    { offsetBytes: firstBlock * stride, data: payload },
    { offsetBytes: scaleOffsetBytes + 2 * firstBlock, data: scales },
  ];
}

/** Repack a whole tensor's GGUF bytes into one GPU-layout buffer of gpuLayout(type, numElems).sizeBytes. */
export function repackTensor(type: GGMLType, bytes: Uint8Array, numElems: number): Uint8Array<ArrayBuffer> {
  const { nb, info } = numBlocks(type, numElems, 'lay out on the GPU');
  const out = new Uint8Array(gpuLayout(type, numElems).sizeBytes);
  for (const w of repackBlocks(type, bytes.subarray(0, nb * info.blockBytes), 0, nb)) out.set(w.data, w.offsetBytes);
  return out;
}

/** CPU dequantization of the GPU layout (what the shaders read); equals dequantize() of the GGUF bytes bit for bit. */
export function dequantizeGpuLayout(type: GGMLType, bytes: Uint8Array, numElems: number): Float32Array<ArrayBuffer> {
  const { nb } = numBlocks(type, numElems, 'dequantize');
  const { sizeBytes, scaleOffsetBytes: s } = gpuLayout(type, numElems);
  assert(bytes.length >= sizeBytes, `dequantizeGpuLayout: ${bytes.length} bytes, need ${sizeBytes}`);
  const out = new Float32Array(numElems);
  switch (type) {
    case GGMLType.F32:
    case GGMLType.F16:
    case GGMLType.Q4_K:
      return dequantize(type, bytes, numElems);
    case GGMLType.Q4_0:
      for (let i = 0; i < nb; i++) decodeQ4_0(bytes, 16 * i, s + 2 * i, out, 32 * i);
      return out;
    case GGMLType.Q8_0:
      for (let i = 0; i < nb; i++) decodeQ8_0(bytes, 32 * i, s + 2 * i, out, 32 * i);
      return out;
    case GGMLType.Q6_K:
      for (let i = 0; i < nb; i++) decodeQ6_K(bytes, 208 * i, s + 2 * i, out, 256 * i);
      return out;
    default:
      throw unsupported(type, 'dequantize');
  }
}

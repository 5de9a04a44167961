// Tests for src/model/quant.ts: f16 conversion, hand-built blocks per type, ggml golden hashes, round-trip
// error bounds, and the GPU repacking (whole and chunked). A new type adds a hand-built block, a golden hash and a bound.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { GGML_TYPES, GGMLType } from '../../src/model/gguf.js';
import {
  dequantize,
  dequantizeGpuLayout,
  f16ArrayToF32,
  f16ToF32,
  f32ArrayToF16,
  f32ToF16,
  gpuLayout,
  QUANT_TYPES,
  quantize,
  repackBlocks,
  repackChunkBlocks,
  repackTensor,
} from '../../src/model/quant.js';

// golden-input:begin (the same generators fed ggml when the golden hashes below were made)
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** 36 super-blocks (9216 values) of nine kinds: gaussian, tiny, outliers, zeros, constant, positive, negative, f16-underflow, ties. */
function goldenInput(seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const x = new Float32Array(256 * 36);
  for (let b = 0; b < 36; b++) {
    for (let i = 0; i < 256; i++) {
      const k = 256 * b + i;
      switch (b % 9) {
        case 0:
          x[k] = normal();
          break;
        case 1:
          x[k] = (rnd() - 0.5) * 0.02;
          break;
        case 2:
          x[k] = normal() * (rnd() < 0.03 ? 50 : 1);
          break;
        case 3:
          x[k] = 0;
          break;
        case 4:
          x[k] = 0.75;
          break;
        case 5:
          x[k] = rnd() * 3;
          break;
        case 6:
          x[k] = -rnd() * 1e-3;
          break;
        case 7:
          x[k] = normal() * 1e-6;
          break;
        default:
          x[k] = Math.round(normal() * 8) / 4;
          break;
      }
    }
  }
  return x;
}
/** Random bytes: every bit pattern a block field can hold, incl. f16 inf/NaN scales. */
function randomBytes(n: number, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}
// golden-input:end

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex').slice(0, 32);
/** f32 bits with every NaN made 0x7fc00000 (JS does not keep NaN payloads); keeps -0 apart from +0. */
function canonicalBits(x: Float32Array): Uint32Array {
  const u = new Uint32Array(x.length);
  const v = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) u[i] = Number.isNaN(x[i]) ? 0x7fc00000 : v[i]!;
  return u;
}
const asBytes = (u: Uint32Array | Uint16Array): Uint8Array => new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
const info = (t: GGMLType): { blockElems: number; blockBytes: number } => GGML_TYPES.get(t)!;
const roundUp4 = (n: number): number => Math.ceil(n / 4) * 4;
const put16 = (b: Uint8Array, o: number, h: number): void => {
  b[o] = h & 0xff;
  b[o + 1] = h >>> 8;
};

describe('f16 conversion', () => {
  it('decodes the landmark halves exactly', () => {
    expect(f16ToF32(0x0000)).toBe(0);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16ToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f16ToF32(0x7c01)).toBeNaN();
    expect(f16ToF32(0xffff)).toBeNaN();
  });

  it('encodes with round-to-nearest-even, like ggml', () => {
    expect(f32ToF16(0)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(1 / 3)).toBe(0x3555);
    // ties between neighbours go to the even mantissa
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    // the input is taken as an f32 first (ggml's argument type): 2^-40 vanishes, leaving a tie
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c00);
    // overflow: 65520 is the tie between 65504 and 2^16 and goes to the even one, which is inf
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65519.99)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    expect(f32ToF16(NaN)).toBe(0x7e00);
    // subnormals
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie with 0 and 1 ulp: even is 0
    expect(f32ToF16(2 ** -25 * (1 + 2 ** -23))).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps
    expect(f32ToF16(-5 * 2 ** -25)).toBe(0x8002); // tie between 2 and 3 ulps
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // rounds up out of the subnormals
    expect(f32ToF16(2 ** -14)).toBe(0x0400);
    expect(f32ToF16(1e-10)).toBe(0x0000);
    expect(f32ToF16(-1e-10)).toBe(0x8000);
    expect(f32ToF16(2 ** -149)).toBe(0x0000); // f32 subnormal
  });

  it('round-trips all 65536 halves (NaNs become the quiet NaN 0x7e00)', () => {
    for (let h = 0; h < 65536; h++) {
      const back = f32ToF16(f16ToF32(h));
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      expect(back).toBe(isNaN ? 0x7e00 : h);
    }
  });

  it('picks the nearest half (ties to even) for random f32 values', () => {
    const rnd = mulberry32(5);
    const bits = new Uint32Array(1);
    const val = new Float32Array(bits.buffer);
    for (let i = 0; i < 20000; i++) {
      // magnitudes spread over the half range, subnormals included
      bits[0] = ((Math.floor(rnd() * 2) << 31) | ((101 + Math.floor(rnd() * 42)) << 23) | Math.floor(rnd() * 2 ** 23)) >>> 0;
      const x = val[0]!;
      const h = f32ToF16(x);
      const y = f16ToF32(h);
      const mag = h & 0x7fff;
      if (mag === 0x7c00) {
        expect(Math.abs(x)).toBeGreaterThanOrEqual(65520);
        continue;
      }
      const up = f16ToF32((h & 0x8000) | (mag + 1));
      const down = mag === 0 ? -up : f16ToF32((h & 0x8000) | (mag - 1));
      const err = Math.abs(x - y);
      expect(err).toBeLessThanOrEqual(Math.abs(x - up));
      expect(err).toBeLessThanOrEqual(Math.abs(x - down));
      if (err === Math.abs(x - up) || (mag !== 0 && err === Math.abs(x - down))) expect(h & 1).toBe(0);
    }
  });

  it('bulk helpers agree with the scalar ones', () => {
    const h = new Uint16Array(65536).map((_, i) => i);
    const f = f16ArrayToF32(h);
    for (let i = 0; i < 65536; i += 37) expect(Object.is(f[i], Math.fround(f16ToF32(i))) || Number.isNaN(f[i])).toBe(true);
    const x = goldenInput(3);
    const hb = f32ArrayToF16(x);
    for (let i = 0; i < x.length; i += 13) expect(hb[i]).toBe(f32ToF16(x[i]!));
  });

  it('matches ggml_fp32_to_fp16_row and ggml_fp16_to_fp32_row (golden hashes)', () => {
    // Made once with libggml-base.so from node-llama-cpp 3.21.1 (ctypes), on these generated inputs.
    const rnd = mulberry32(99);
    const fb = new Uint32Array(4096);
    for (let i = 0; i < fb.length; i++) fb[i] = Math.floor(rnd() * 4294967296) >>> 0;
    const toH = f32ArrayToF16(new Float32Array(fb.buffer));
    expect(sha(asBytes(toH))).toBe('b56c621243baa1f8ed5fa131b265d278');
    const all = f16ArrayToF32(new Uint16Array(65536).map((_, i) => i));
    expect(sha(asBytes(canonicalBits(all)))).toBe('385ff5fe69182797cda5f1827e20cf42');
  });
});

describe('hand-built blocks, expected values from the format spec', () => {
  it('F32 and F16 read little-endian values', () => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat32(0, 1.5, true);
    new DataView(b.buffer).setFloat32(4, -0.25, true);
    expect(Array.from(dequantize(GGMLType.F32, b, 2))).toEqual([1.5, -0.25]);
    const h = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00]); // 1, -2, 2^-24
    expect(Array.from(dequantize(GGMLType.F16, h, 3))).toEqual([1, -2, 2 ** -24]);
  });

  it('Q4_0: x = (nibble - 8) * d, low nibbles are elements 0..15, high nibbles 16..31', () => {
    const b = new Uint8Array(18);
    put16(b, 0, 0x3800); // d = 0.5
    for (let j = 0; j < 16; j++) b[2 + j] = j | ((15 - j) << 4);
    const y = dequantize(GGMLType.Q4_0, b, 32);
    expect(y[0]).toBe(-4); // (0 - 8) * 0.5
    expect(y[8]).toBe(0);
    expect(y[15]).toBe(3.5); // (15 - 8) * 0.5
    expect(y[16]).toBe(3.5); // high nibble of qs[0] = 15
    expect(y[31]).toBe(-4); // high nibble of qs[15] = 0
    for (let j = 0; j < 16; j++) {
      expect(y[j]).toBe((j - 8) * 0.5);
      expect(y[16 + j]).toBe((7 - j) * 0.5);
    }
  });

  it('Q8_0: x = qs[j] (int8) * d', () => {
    const b = new Uint8Array(34 * 2);
    put16(b, 0, 0x3400); // d = 0.25
    for (let j = 0; j < 32; j++) b[2 + j] = (j - 16) & 0xff;
    b[2] = 0x80; // -128
    put16(b, 34, 0xc000); // second block: d = -2
    for (let j = 0; j < 32; j++) b[36 + j] = j === 0 ? 127 : j;
    const y = dequantize(GGMLType.Q8_0, b, 64);
    expect(y[0]).toBe(-32); // -128 * 0.25
    expect(y[1]).toBe(-3.75); // -15 * 0.25
    expect(y[16]).toBe(0);
    expect(y[31]).toBe(3.75);
    expect(y[32]).toBe(-254); // 127 * -2
    expect(y[63]).toBe(-62);
  });

  it('Q4_K: 6-bit packed scales/mins; chunk c uses qs[32c..] low nibbles then high nibbles', () => {
    // Sub-block j (32 elements): x = d * sc[j] * q - dmin * m[j]. Packing of the 12 scale bytes:
    // j < 4: byte j = sc[j] (6 bits), byte j+4 = m[j]; j >= 4: low 4 bits of sc[j] and m[j] in byte j+4,
    // their high 2 bits in the top bits of bytes j-4 (sc) and j (m).
    const sc = [1, 2, 3, 4, 17, 33, 48, 63];
    const m = [0, 5, 10, 63, 16, 31, 47, 62];
    const b = new Uint8Array(144);
    put16(b, 0, 0x3c00); // d = 1
    put16(b, 2, 0x3800); // dmin = 0.5
    for (let j = 0; j < 4; j++) {
      b[4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
      b[4 + j + 4] = m[j]! | ((m[j + 4]! >> 4) << 6);
      b[4 + j + 8] = (sc[j + 4]! & 0xf) | ((m[j + 4]! & 0xf) << 4);
    }
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[16 + 32 * c + l] = (l & 15) | (((l + c) & 15) << 4);
    const y = dequantize(GGMLType.Q4_K, b, 256);
    expect(y[0]).toBe(0); // 1*1*0 - 0.5*0
    expect(y[31]).toBe(15); // 1*1*15
    expect(y[32]).toBe(-2.5); // 1*2*0 - 0.5*5
    expect(y[33]).toBe(-0.5); // 2*1 - 2.5
    expect(y[64]).toBe(-5); // sub-block 2: 3*0 - 0.5*10
    expect(y[96 + 5]).toBe(4 * ((5 + 1) & 15) - 31.5); // sub-block 3, chunk 1: high nibble of qs[32+5]
    expect(y[128]).toBe(-8); // sub-block 4: 17*0 - 0.5*16
    expect(y[255]).toBe(63 * ((31 + 3) & 15) - 31); // sub-block 7: high nibble of qs[127]
    for (let e = 0; e < 256; e++) {
      const c = e >> 6;
      const hi = (e >> 5) & 1;
      const l = e & 31;
      const q = hi ? (l + c) & 15 : l & 15;
      const j = 2 * c + hi;
      expect(y[e]).toBe(sc[j]! * q - 0.5 * m[j]!);
    }
  });

  it('Q6_K: 6-bit q from ql nibble + 2 qh bits, int8 scale per 16 elements, d last', () => {
    // Element e: half h = e>>7, r = e&127, group g = r>>5, l = r&31. Low 4 bits from ql[64h + l] (g=0: low
    // nibble, g=2: high) or ql[64h + 32 + l] (g=1 low, g=3 high); high 2 bits = (qh[32h + l] >> 2g) & 3.
    // Scale index 8h + (l>>4) + 2g; x = d * scale * (q - 32).
    const q6 = (e: number): number => (e * 7 + 3) % 64;
    const scales = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? i + 1 : -(i + 1) * 8));
    const b = new Uint8Array(210);
    for (let e = 0; e < 256; e++) {
      const h = e >> 7;
      const g = (e & 127) >> 5;
      const l = e & 31;
      const q = q6(e);
      const qlAt = 64 * h + (g & 1 ? 32 : 0) + l;
      b[qlAt] = b[qlAt]! | ((q & 15) << (g >= 2 ? 4 : 0));
      b[128 + 32 * h + l] = b[128 + 32 * h + l]! | ((q >> 4) << (2 * g));
    }
    for (let i = 0; i < 16; i++) b[192 + i] = scales[i]! & 0xff;
    put16(b, 208, 0x3000); // d = 0.125
    const y = dequantize(GGMLType.Q6_K, b, 256);
    expect(y[0]).toBe(0.125 * 1 * (3 - 32)); // q6(0) = 3, scale[0] = 1
    expect(y[16]).toBe(0.125 * -16 * (((16 * 7 + 3) % 64) - 32)); // scale[1] = -16
    expect(y[255]).toBe(0.125 * -128 * (((255 * 7 + 3) % 64) - 32)); // scale[15] = -128
    for (let e = 0; e < 256; e++) {
      const h = e >> 7;
      const g = (e & 127) >> 5;
      const l = e & 31;
      const s = scales[8 * h + (l >> 4) + 2 * g]!;
      expect(y[e]).toBe(Math.fround(0.125 * s) * (q6(e) - 32));
    }
  });

  it('other types are UNSUPPORTED_TENSOR_TYPE', () => {
    for (const t of [GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_K, GGMLType.BF16, 99 as GGMLType]) {
      for (const f of [
        () => dequantize(t, new Uint8Array(1024), 256),
        () => quantize(t, new Float32Array(256)),
        () => gpuLayout(t, 256),
        () => repackChunkBlocks(t),
      ]) {
        let err: unknown;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(EngineError);
        expect((err as EngineError).code).toBe('UNSUPPORTED_TENSOR_TYPE');
      }
    }
  });
});

describe('ggml golden hashes (bit-exact with quantize_row_*_ref and dequantize_row_*)', () => {
  // Made once by feeding goldenInput(42) / randomBytes(.., 7) to libggml-base.so of node-llama-cpp 3.21.1
  // through ctypes (quantize_row_{t}_ref, dequantize_row_{t}); the hash is sha256 of the bytes (NaNs
  // canonicalized), first 32 hex digits.
  const golden: [GGMLType, number, string, string][] = [
    [GGMLType.Q4_0, 400, 'dad20448a781c8894129ecf682e785cf', '8ba9eaf0078e31bc69ee91da4d4898ce'],
    [GGMLType.Q8_0, 400, '5224f24f8096963ac2122db2a5094d8e', '79d7df6a1cc9055c2a786e57474c6bdd'],
    [GGMLType.Q4_K, 60, '9208dd7baea9b0719e0b99e1274296b4', '56f4e5371f3e8f3a53638abaa2fcefa0'],
    [GGMLType.Q6_K, 60, '01a15bd2a546e54774f940497350da8b', '9bb70a44370a75ccf9480f7f4677ff84'],
  ];
  const x = goldenInput(42);
  for (const [t, nb, qHash, dqHash] of golden) {
    const name = GGML_TYPES.get(t)!.name;
    it(`${name}: quantize matches ggml's reference quantizer`, () => {
      expect(sha(quantize(t, x))).toBe(qHash);
    });
    it(`${name}: dequantize of random bytes (all bit patterns, inf/NaN scales too) matches ggml`, () => {
      const { blockBytes, blockElems } = info(t);
      const y = dequantize(t, randomBytes(blockBytes * nb, 7), nb * blockElems);
      expect(sha(asBytes(canonicalBits(y)))).toBe(dqHash);
    });
  }
});

describe('quantize → dequantize round trips', () => {
  const rnd = mulberry32(11);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const N = 256 * 64;
  const x = new Float32Array(N).map(() => normal() * (rnd() < 0.01 ? 20 : 1));

  const stats = (t: GGMLType): { nmse: number; worst: number; y: Float32Array } => {
    const be = info(t).blockElems === 1 ? 32 : info(t).blockElems;
    const y = dequantize(t, quantize(t, x), N);
    let se = 0;
    let sx = 0;
    let worst = 0;
    for (let b = 0; b < N / be; b++) {
      let amax = 0;
      for (let j = 0; j < be; j++) amax = Math.max(amax, Math.abs(x[b * be + j]!));
      for (let j = 0; j < be; j++) {
        const e = Math.abs(x[b * be + j]! - y[b * be + j]!);
        se += e * e;
        sx += x[b * be + j]! ** 2;
        worst = Math.max(worst, e / amax);
      }
    }
    return { nmse: se / sx, worst, y };
  };

  it('F32 is exact', () => {
    expect(stats(GGMLType.F32).nmse).toBe(0);
  });

  it('F16: |err| <= 2^-11 |x|, or half a subnormal ulp (2^-25) below 2^-14', () => {
    const { y } = stats(GGMLType.F16);
    for (let i = 0; i < N; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(Math.max(2 ** -11 * Math.abs(x[i]!), 2 ** -25));
  });

  it('Q8_0: |err| <= (0.5 + 127*2^-11) * amax/127 per block (rounding + f16 scale)', () => {
    // q = round(x/d) leaves <= d/2; storing d as f16 moves each q*d by <= 127 * d * 2^-11.
    const s = stats(GGMLType.Q8_0);
    expect(s.worst).toBeLessThanOrEqual(((0.5 + 127 * 2 ** -11) / 127) * (1 + 1e-6)); // measured 0.00436
    expect(s.nmse).toBeLessThan(2e-4); // measured 1.2e-4 on this input
  });

  it('Q4_0: |err| <= (1 + 8*2^-11) * amax/8 per block (levels -8..7; +8 clamps to 7)', () => {
    const s = stats(GGMLType.Q4_0);
    expect(s.worst).toBeLessThanOrEqual(((1 + 8 * 2 ** -11) / 8) * (1 + 1e-6)); // measured 0.12500
    expect(s.nmse).toBeLessThan(3e-2); // measured 2.1e-2 with 1% outliers; 7.4e-3 on plain N(0,1)
  });

  it('Q4_K: NMSE < 1.2e-2, |err| < 0.11 * super-block amax (measured, no closed form)', () => {
    const s = stats(GGMLType.Q4_K);
    expect(s.nmse).toBeLessThan(1.2e-2); // measured 9.7e-3 with outliers; 5.1e-3 on plain N(0,1)
    expect(s.worst).toBeLessThan(0.11); // measured 0.070 here, 0.102 on uniform(-1,1)
  });

  it('Q6_K: NMSE < 1.5e-3, |err| < 0.025 * super-block amax (measured)', () => {
    const s = stats(GGMLType.Q6_K);
    expect(s.nmse).toBeLessThan(1.5e-3); // measured 1.0e-3 with outliers; 3.1e-4 on plain N(0,1)
    expect(s.worst).toBeLessThan(0.025); // measured 0.016, 0.020 on uniform(-1,1)
  });

  it('all-zero input quantizes to zero scales and dequantizes to exact zeros', () => {
    for (const t of QUANT_TYPES) {
      const be = info(t).blockElems === 1 ? 32 : info(t).blockElems;
      const y = dequantize(t, quantize(t, new Float32Array(be * 2)), be * 2);
      for (const v of y) expect(v === 0).toBe(true);
    }
  });
});

describe('GPU layout and repacking', () => {
  /** GGUF bytes for nb blocks: half quantized values, half random bit patterns (NaN/inf scales too). */
  function tensorBytes(t: GGMLType, nb: number, seed: number): { bytes: Uint8Array; numElems: number } {
    const { blockBytes, blockElems } = info(t);
    const numElems = nb * blockElems;
    const rnd = mulberry32(seed);
    if (seed % 2 === 0) return { bytes: randomBytes(nb * blockBytes, seed), numElems };
    const x = new Float32Array(numElems).map(() => rnd() * 2 - 1);
    return { bytes: quantize(t, x), numElems };
  }
  const sameBits = (a: Float32Array, b: Float32Array): void => {
    expect(a.length).toBe(b.length);
    expect(Buffer.from(asBytes(canonicalBits(a))).equals(Buffer.from(asBytes(canonicalBits(b))))).toBe(true);
  };
  const raggedBlocks = [1, 2, 3, 5, 7, 8, 33];

  it('sizes: multiples of 4, <= GGUF size rounded up to 4, scale region after the payloads', () => {
    const stride: Partial<Record<GGMLType, number>> = { [GGMLType.Q4_0]: 16, [GGMLType.Q8_0]: 32, [GGMLType.Q6_K]: 208 };
    for (const t of QUANT_TYPES) {
      for (const nb of [0, ...raggedBlocks]) {
        const { blockBytes, blockElems } = info(t);
        const l = gpuLayout(t, nb * blockElems);
        expect(l.sizeBytes % 4).toBe(0);
        expect(l.sizeBytes).toBeLessThanOrEqual(roundUp4(nb * blockBytes));
        const s = stride[t];
        if (s === undefined) expect(l).toEqual({ sizeBytes: roundUp4(nb * blockBytes), scaleOffsetBytes: 0 });
        else expect(l).toEqual({ sizeBytes: roundUp4(nb * (s + 2)), scaleOffsetBytes: s * nb });
      }
    }
  });

  it('Q4_0 block i: qs at 16*i, d at scaleOffsetBytes + 2*i; Q6_K: ql/qh/scales at 208*i', () => {
    const { bytes } = tensorBytes(GGMLType.Q4_0, 3, 1);
    const g = repackTensor(GGMLType.Q4_0, bytes, 96);
    expect(g.length).toBe(56); // 48 + 6 -> 54 -> 56
    for (let i = 0; i < 3; i++) {
      expect(Array.from(g.subarray(16 * i, 16 * i + 16))).toEqual(Array.from(bytes.subarray(18 * i + 2, 18 * i + 18)));
      expect(Array.from(g.subarray(48 + 2 * i, 50 + 2 * i))).toEqual(Array.from(bytes.subarray(18 * i, 18 * i + 2)));
    }
    expect(Array.from(g.subarray(54))).toEqual([0, 0]);
    const q6 = tensorBytes(GGMLType.Q6_K, 3, 3).bytes;
    const g6 = repackTensor(GGMLType.Q6_K, q6, 768);
    for (let i = 0; i < 3; i++) {
      expect(Array.from(g6.subarray(208 * i, 208 * i + 208))).toEqual(Array.from(q6.subarray(210 * i, 210 * i + 208)));
      expect(Array.from(g6.subarray(624 + 2 * i, 626 + 2 * i))).toEqual(Array.from(q6.subarray(210 * i + 208, 210 * i + 210)));
    }
  });

  it('dequantize(gguf) == dequantizeGpuLayout(repack(gguf)) bit for bit, ragged sizes', () => {
    for (const t of QUANT_TYPES) {
      for (const nb of raggedBlocks) {
        for (const seed of [1, 2]) {
          const { bytes, numElems } = tensorBytes(t, nb, seed + nb);
          const g = repackTensor(t, bytes, numElems);
          expect(g.length).toBe(gpuLayout(t, numElems).sizeBytes);
          sameBits(dequantizeGpuLayout(t, g, numElems), dequantize(t, bytes, numElems));
        }
      }
    }
  });

  it('chunked repacking gives the same buffer; every write is 4-byte aligned and in bounds', () => {
    const rnd = mulberry32(21);
    for (const t of QUANT_TYPES) {
      const { blockBytes } = info(t);
      const m = repackChunkBlocks(t);
      for (const nb of [1, 2, 3, 9, 33, 64, 101]) {
        const { bytes, numElems } = tensorBytes(t, nb, nb);
        const whole = repackTensor(t, bytes, numElems);
        const { sizeBytes } = gpuLayout(t, numElems);
        for (let trial = 0; trial < 4; trial++) {
          const buf = new Uint8Array(sizeBytes).fill(0xee);
          const written = new Uint8Array(sizeBytes);
          let first = 0;
          while (first < nb) {
            const n = Math.min(nb - first, m * (1 + Math.floor(rnd() * 5)));
            for (const w of repackBlocks(t, bytes.subarray(first * blockBytes, (first + n) * blockBytes), first, nb)) {
              expect(w.offsetBytes % 4).toBe(0);
              expect(w.data.length % 4).toBe(0);
              expect(w.offsetBytes + w.data.length).toBeLessThanOrEqual(sizeBytes);
              for (let k = w.offsetBytes; k < w.offsetBytes + w.data.length; k++) written[k] = written[k]! + 1;
              buf.set(w.data, w.offsetBytes);
            }
            first += n;
          }
          expect(written.every((c) => c === 1)).toBe(true); // every byte written exactly once
          expect(Buffer.from(buf).equals(Buffer.from(whole))).toBe(true);
          sameBits(dequantizeGpuLayout(t, buf, numElems), dequantize(t, bytes, numElems));
        }
      }
    }
  });

  it('repackChunkBlocks: 2 where 2-byte items could straddle a u32, else 1; misaligned chunks are refused', () => {
    expect(QUANT_TYPES.map((t) => [GGML_TYPES.get(t)!.name, repackChunkBlocks(t)])).toEqual([
      ['F32', 1],
      ['F16', 2],
      ['Q4_0', 2],
      ['Q8_0', 2],
      ['Q4_K', 1],
      ['Q6_K', 2],
    ]);
    const { bytes } = tensorBytes(GGMLType.Q4_0, 5, 1);
    expect(() => repackBlocks(GGMLType.Q4_0, bytes.subarray(18, 54), 1, 5)).toThrow(/multiple of 2/); // odd start
    expect(() => repackBlocks(GGMLType.Q4_0, bytes.subarray(0, 54), 0, 5)).toThrow(/multiple of 2/); // odd, not last
    expect(() => repackBlocks(GGMLType.Q4_0, bytes.subarray(0, 20), 0, 5)).toThrow(/whole number/);
    expect(() => repackBlocks(GGMLType.Q4_0, bytes.subarray(0, 36), 4, 5)).toThrow(/outside/);
    expect(repackBlocks(GGMLType.Q4_0, bytes.subarray(72, 90), 4, 5).map((w) => [w.offsetBytes, w.data.length])).toEqual([
      [64, 16],
      [80 + 8, 4], // the last block's d, padded to a whole u32
    ]);
    expect(repackBlocks(GGMLType.F16, new Uint8Array(6), 4, 7)).toEqual([{ offsetBytes: 8, data: new Uint8Array(8) }]);
  });
});

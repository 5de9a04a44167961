// Matmul against quantized weights: Y[m, n] = sum_k W[n, k] * X[m, k] (+ bias[n]) (+ Y[m, n]),
// Y optionally a column range of a wider row (yStride, yOffset).
// Weights stay in their GPU layout (src/model/quant.ts gpuLayout) and are dequantized in load8().
// One entry point per shape of work: `matvec` (few rows of X), `matmul_tiled` (prefill), and
// `gather_rows` (embedding lookup: a row of W per token id). The weight type is an override.

override WTYPE: u32 = 0u; // ggml type id: 0 F32, 1 F16, 2 Q4_0, 8 Q8_0, 12 Q4_K, 14 Q6_K

struct Params {
  K: u32,             // row length of W and X
  N: u32,             // rows of W = columns of Y
  scaleOffWords: u32, // word offset of the f16 scale region (Q4_0, Q8_0, Q6_K)
  flags: u32,         // bit 0: add bias, bit 1: accumulate into Y, bit 2: M = step.numOut
  mFixed: u32,        // when non-zero, M = mFixed instead of the step's token count
  xRowOffset: u32,    // first row of X to read (lm_head reads only the last token)
  yStride: u32,       // row stride of Y in elements (0: N), so several matmuls can fill one wide row
  yOffset: u32,       // first column of Y this matmul writes
}

struct Step {
  numTokens: u32, // tokens in the step (rows of X unless mFixed or flag 4)
  numOut: u32,    // rows whose logits the step computes (the lm head's M under flag 4)
  _s0: u32,
  _s1: u32,
}

@group(0) @binding(0) var<storage, read> W: array<u32>;          // weight, GPU layout of WTYPE
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;    // [M, K] f32
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;    // [M, N] f32
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> bias: array<f32>;       // [yOffset + N] f32 (unused unless flags & 1)
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<storage, read> tokenIds: array<u32>;   // [M] u32 (gather_rows only)
@group(0) @binding(7) var<storage, read> W4: array<vec4<u32>>;   // the same weight buffer, for 16-byte loads

struct W8 { a: vec4<f32>, b: vec4<f32> }

fn f16lo(w: u32) -> f32 { return unpack2x16float(w).x; }
fn half_at(halfIdx: u32) -> f32 {
  let w = W[halfIdx >> 1u];
  return unpack2x16float(w)[halfIdx & 1u];
}
fn byte_of(w: u32, i: u32) -> u32 { return (w >> (8u * i)) & 0xffu; }
fn sbyte_of(w: u32, i: u32) -> f32 { return f32(bitcast<i32>(w << (24u - 8u * i)) >> 24u); }

// Q4_K: the scale (d x 6-bit scale) and min (dmin x 6-bit min) of sub-block `sub` (0..7) of the
// super-block at word `base`, unpacked from the 12 scale bytes at words 1..3 (ggml's get_scale_min_k4).
fn q4k_scale_min(base: u32, sub: u32) -> vec2<f32> {
  let dd = unpack2x16float(W[base]);
  let s0 = W[base + 1u];
  let s1 = W[base + 2u];
  let s2 = W[base + 3u];
  var sc: u32;
  var mn: u32;
  if (sub < 4u) {
    sc = byte_of(s0, sub) & 63u;
    mn = byte_of(s1, sub) & 63u;
  } else {
    let hi = byte_of(s2, sub - 4u);
    sc = (hi & 0xfu) | ((byte_of(s0, sub - 4u) >> 6u) << 4u);
    mn = (hi >> 4u) | ((byte_of(s1, sub - 4u) >> 6u) << 4u);
  }
  return vec2<f32>(dd.x * f32(sc), dd.y * f32(mn));
}

// Eight consecutive weights W[row, 8g .. 8g+7], dequantized.
fn load8(row: u32, g: u32) -> W8 {
  let K = p.K;
  let k0 = 8u * g;
  switch WTYPE {
    case 0u: { // F32
      let o = row * K + k0;
      return W8(
        vec4<f32>(bitcast<f32>(W[o]), bitcast<f32>(W[o + 1u]), bitcast<f32>(W[o + 2u]), bitcast<f32>(W[o + 3u])),
        vec4<f32>(bitcast<f32>(W[o + 4u]), bitcast<f32>(W[o + 5u]), bitcast<f32>(W[o + 6u]), bitcast<f32>(W[o + 7u])));
    }
    case 1u: { // F16
      let o = (row * K + k0) >> 1u;
      let h0 = unpack2x16float(W[o]);
      let h1 = unpack2x16float(W[o + 1u]);
      let h2 = unpack2x16float(W[o + 2u]);
      let h3 = unpack2x16float(W[o + 3u]);
      return W8(vec4<f32>(h0, h1), vec4<f32>(h2, h3));
    }
    case 2u: { // Q4_0: 16 nibble bytes per block in region A, f16 d in region B
      let b = row * (K >> 5u) + (k0 >> 5u);
      let j0 = k0 & 31u;
      let d = half_at(p.scaleOffWords * 2u + b);
      let wo = 4u * b + ((j0 & 15u) >> 2u);
      let w0 = W[wo];
      let w1 = W[wo + 1u];
      let sh = select(0u, 4u, j0 >= 16u);
      let q0 = vec4<u32>((w0 >> sh) & 0xfu, (w0 >> (sh + 8u)) & 0xfu, (w0 >> (sh + 16u)) & 0xfu, (w0 >> (sh + 24u)) & 0xfu);
      let q1 = vec4<u32>((w1 >> sh) & 0xfu, (w1 >> (sh + 8u)) & 0xfu, (w1 >> (sh + 16u)) & 0xfu, (w1 >> (sh + 24u)) & 0xfu);
      return W8((vec4<f32>(q0) - 8.0) * d, (vec4<f32>(q1) - 8.0) * d);
    }
    case 8u: { // Q8_0: 32 signed bytes per block in region A, f16 d in region B
      let b = row * (K >> 5u) + (k0 >> 5u);
      let d = half_at(p.scaleOffWords * 2u + b);
      let wo = 8u * b + ((k0 & 31u) >> 2u);
      let w0 = W[wo];
      let w1 = W[wo + 1u];
      return W8(
        vec4<f32>(sbyte_of(w0, 0u), sbyte_of(w0, 1u), sbyte_of(w0, 2u), sbyte_of(w0, 3u)) * d,
        vec4<f32>(sbyte_of(w1, 0u), sbyte_of(w1, 1u), sbyte_of(w1, 2u), sbyte_of(w1, 3u)) * d);
    }
    case 12u: { // Q4_K: GGUF layout, 144-byte (36-word) super-blocks of 256
      let sb = row * (K >> 8u) + (k0 >> 8u);
      let base = 36u * sb;
      let e = k0 & 255u;
      let j = e >> 6u;          // 64-element chunk
      let c = e & 63u;
      let sub = 2u * j + (c >> 5u);
      let sm = q4k_scale_min(base, sub);
      let dl = sm.x;
      let ml = sm.y;
      let wo = base + 4u + 8u * j + ((c & 31u) >> 2u);
      let w0 = W[wo];
      let w1 = W[wo + 1u];
      let sh = select(0u, 4u, c >= 32u);
      let q0 = vec4<u32>((w0 >> sh) & 0xfu, (w0 >> (sh + 8u)) & 0xfu, (w0 >> (sh + 16u)) & 0xfu, (w0 >> (sh + 24u)) & 0xfu);
      let q1 = vec4<u32>((w1 >> sh) & 0xfu, (w1 >> (sh + 8u)) & 0xfu, (w1 >> (sh + 16u)) & 0xfu, (w1 >> (sh + 24u)) & 0xfu);
      return W8(vec4<f32>(q0) * dl - ml, vec4<f32>(q1) * dl - ml);
    }
    case 14u: { // Q6_K: 208-byte (52-word) blocks {ql[128], qh[64], scales[16]} in region A, f16 d in region B
      let b = row * (K >> 8u) + (k0 >> 8u);
      let base = 52u * b;
      let e = k0 & 255u;
      let n = e >> 7u;
      let lf = e & 127u;
      let qd = lf >> 5u;
      let l = lf & 31u;
      let d = half_at(p.scaleOffWords * 2u + b);
      let scIdx = n * 8u + (l >> 4u) + 2u * qd;
      let scw = W[base + 48u + (scIdx >> 2u)];
      let scale = d * sbyte_of(scw, scIdx & 3u);
      let qlo = base + ((n * 64u + l + (qd & 1u) * 32u) >> 2u);
      let qho = base + 32u + ((n * 32u + l) >> 2u);
      let nsh = select(0u, 4u, qd >= 2u);
      let hsh = 2u * qd;
      var out: array<f32, 8>;
      for (var i = 0u; i < 8u; i++) {
        let lw = W[qlo + (i >> 2u)];
        let hw = W[qho + (i >> 2u)];
        let lb = byte_of(lw, i & 3u);
        let hb = byte_of(hw, i & 3u);
        let q = ((lb >> nsh) & 0xfu) | (((hb >> hsh) & 3u) << 4u);
        out[i] = (f32(q) - 32.0) * scale;
      }
      return W8(vec4<f32>(out[0], out[1], out[2], out[3]), vec4<f32>(out[4], out[5], out[6], out[7]));
    }
    default: {
      return W8(vec4<f32>(0.0), vec4<f32>(0.0));
    }
  }
}

// Thirty-two consecutive weights W[row, 32 blk .. 32 blk + 31] (one quant block, or one eighth
// of a K-quant super-block), dequantized, read with 16-byte loads. The decode matvecs use this;
// needs K % 32 == 0 (the host falls back to load8 for a ragged tail).
alias W32 = array<vec4<f32>, 8>;

fn bytes4(w: u32) -> vec4<u32> { return (vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu); }
fn sbytes4(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

fn load32(row: u32, blk: u32) -> W32 {
  var o: W32;
  let K = p.K;
  switch WTYPE {
    case 0u: { // F32: 8 x 16 bytes
      let q = (row * K + 32u * blk) >> 2u;
      for (var i = 0u; i < 8u; i++) { o[i] = bitcast<vec4<f32>>(W4[q + i]); }
    }
    case 1u: { // F16: 4 x 16 bytes
      let q = (row * K + 32u * blk) >> 3u;
      for (var i = 0u; i < 4u; i++) {
        let w = W4[q + i];
        o[2u * i] = vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
        o[2u * i + 1u] = vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
      }
    }
    case 2u: { // Q4_0: one 16-byte load of nibbles; element j low nibble of byte j, 16 + j high
      let b = row * (K >> 5u) + blk;
      let d = half_at(p.scaleOffWords * 2u + b);
      let w = W4[b];
      for (var i = 0u; i < 4u; i++) {
        let by = bytes4(w[i]);
        o[i] = (vec4<f32>(by & vec4<u32>(0xfu)) - 8.0) * d;
        o[4u + i] = (vec4<f32>(by >> vec4<u32>(4u)) - 8.0) * d;
      }
    }
    case 8u: { // Q8_0: two 16-byte loads of signed bytes
      let b = row * (K >> 5u) + blk;
      let d = half_at(p.scaleOffWords * 2u + b);
      let w0 = W4[2u * b];
      let w1 = W4[2u * b + 1u];
      for (var i = 0u; i < 4u; i++) {
        o[i] = sbytes4(w0[i]) * d;
        o[4u + i] = sbytes4(w1[i]) * d;
      }
    }
    case 12u: { // Q4_K: sub-block s of a 144-byte super-block; 32 nibbles in two 16-byte loads
      let sb = row * (K >> 8u) + (blk >> 3u);
      let s = blk & 7u;
      let base = 36u * sb;
      let sm = q4k_scale_min(base, s);
      let dl = sm.x;
      let ml = sm.y;
      let q = (base + 4u + 8u * (s >> 1u)) >> 2u;
      let sh = vec4<u32>(4u * (s & 1u));
      let w0 = W4[q];
      let w1 = W4[q + 1u];
      for (var i = 0u; i < 4u; i++) {
        o[i] = vec4<f32>((bytes4(w0[i]) >> sh) & vec4<u32>(0xfu)) * dl - ml;
        o[4u + i] = vec4<f32>((bytes4(w1[i]) >> sh) & vec4<u32>(0xfu)) * dl - ml;
      }
    }
    case 14u: { // Q6_K: quarter of a half of a 208-byte block, located by blk_info; low 4 bits from ql, high 2 from qh
      let k = blk_info(row, blk);
      let lq = k.w0 >> 2u;
      let hq = k.w1 >> 2u;
      let nsh = k.sh0;
      let hsh = k.sh1;
      let sc0 = k.sc.x;
      let sc1 = k.sc.y;
      for (var h = 0u; h < 2u; h++) {
        let l4 = W4[lq + h];
        let h4 = W4[hq + h];
        for (var i = 0u; i < 4u; i++) {
          let packed = ((l4[i] >> nsh) & 0x0f0f0f0fu) | (((h4[i] >> hsh) & 0x03030303u) << 4u);
          let scale = select(sc1, sc0, h == 0u);
          o[4u * h + i] = (vec4<f32>(bytes4(packed)) - 32.0) * scale;
        }
      }
    }
    default: {
      for (var i = 0u; i < 8u; i++) { o[i] = vec4<f32>(0.0); }
    }
  }
  return o;
}

fn num_rows_m() -> u32 {
  if ((p.flags & 4u) != 0u) { return step.numOut; }
  return select(step.numTokens, p.mFixed, p.mFixed != 0u);
}

fn store(m: u32, n: u32, acc: f32) {
  var v = acc;
  // The bias is laid out like Y's row: a part at yOffset reads its slice of a concatenated bias.
  if ((p.flags & 1u) != 0u) { v += bias[p.yOffset + n]; }
  let o = m * select(p.N, p.yStride, p.yStride != 0u) + p.yOffset + n;
  if ((p.flags & 2u) != 0u) { v += Y[o]; }
  Y[o] = v;
}

// One thread's share of the dot products of row n with the M (<= MV_M) rows of X: blocks lane,
// lane + stride, ... of 32 weights (load32), then a ragged tail of 8-weight groups (float rows
// whose length is not a multiple of 32). Every loop over m runs to the pipeline constant MV_M, so
// the accumulators stay in registers; rows m >= M are skipped. Shared by matvec and matvec_subgroup.
fn matvec_partial(n: u32, lane: u32, stride: u32, M: u32) -> array<f32, MV_ACC> {
  var acc: array<f32, MV_ACC>;
  for (var m = 0u; m < MV_M; m++) { acc[m] = 0.0; }
  if (n >= p.N) { return acc; }
  let kv4 = p.K >> 2u;
  let blocks = p.K >> 5u;
  for (var b = lane; b < blocks; b += stride) {
    let w = load32(n, b);
    for (var m = 0u; m < MV_M; m++) {
      if (m < M) {
        let xb = (p.xRowOffset + m) * kv4 + 8u * b;
        for (var i = 0u; i < 8u; i++) { acc[m] += dot(w[i], X[xb + i]); }
      }
    }
  }
  for (var g = 4u * blocks + lane; g < (p.K >> 3u); g += stride) {
    let w = load8(n, g);
    for (var m = 0u; m < MV_M; m++) {
      if (m < M) {
        let xb = (p.xRowOffset + m) * kv4 + 2u * g;
        acc[m] += dot(w.a, X[xb]) + dot(w.b, X[xb + 1u]);
      }
    }
  }
  return acc;
}

// ---- matvec (GPUs without subgroups): 8 rows per workgroup, 8 threads per row splitting K in
// blocks, reduced through workgroup memory; all M (<= MV_M) rows of X share each weight load.
// The host keeps one pipeline per MV_M bucket (1, 4, 8, 16) and picks the smallest that holds M:
// a weight is read once for up to 16 tokens (batched decode, a verified token tree).
const MV_WG: u32 = 64u;
const MV_TPR: u32 = 8u; // threads per row
const MV_ACC: u32 = 16u; // the largest MV_M
override MV_M: u32 = 4u; // rows of X this pipeline takes (<= MV_ACC)
var<workgroup> red: array<array<f32, MV_WG>, MV_ACC>;

@compute @workgroup_size(MV_WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) t: u32) {
  let n = (wid.y * nwg.x + wid.x) * (MV_WG / MV_TPR) + t / MV_TPR;
  let lane = t % MV_TPR;
  let M = min(num_rows_m(), MV_M);
  let acc = matvec_partial(n, lane, MV_TPR, M);
  for (var m = 0u; m < MV_M; m++) { red[m][t] = acc[m]; }
  workgroupBarrier();
  for (var s = MV_TPR / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MV_M; m++) { red[m][t] += red[m][t + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < MV_M; m++) {
      if (m < M) { store(m, n, red[m][t]); }
    }
  }
}

// ---- tiled matmul: 64 (tokens) x 64 (rows) tile per workgroup, K in steps of 32 ----
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 32u;
// Rows padded to TK + 1 words: the inner loop reads ws[lid.x + 16 i][k] across 16 lanes, which a
// row stride of 32 words would put in one shared-memory bank (a 16-way conflict on GPUs).
const TKP: u32 = TK + 1u;
var<workgroup> xs: array<array<f32, TKP>, TM>;
var<workgroup> ws: array<array<f32, TKP>, TN>;

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = num_rows_m();
  let n0 = wid.x * TN;
  let m0 = wid.y * TM;
  let t = lid.y * 16u + lid.x;
  let kv4 = p.K >> 2u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // W tile: 64 rows x 4 groups of 8 = one load8 per thread
    {
      let r = t >> 2u;
      let gi = t & 3u;
      let n = n0 + r;
      let g = (k0 >> 3u) + gi;
      var w = W8(vec4<f32>(0.0), vec4<f32>(0.0));
      if (n < p.N && 8u * g < p.K) { w = load8(n, g); }
      for (var i = 0u; i < 4u; i++) {
        ws[r][gi * 8u + i] = w.a[i];
        ws[r][gi * 8u + 4u + i] = w.b[i];
      }
    }
    // X tile: 64 tokens x 8 vec4 = two vec4 per thread
    for (var h = 0u; h < 2u; h++) {
      let idx = t + 256u * h;
      let r = idx >> 3u;
      let c4 = idx & 7u;
      let m = m0 + r;
      var xv = vec4<f32>(0.0);
      if (m < M && k0 + 4u * c4 < p.K) { xv = X[(p.xRowOffset + m) * kv4 + (k0 >> 2u) + c4]; }
      for (var i = 0u; i < 4u; i++) { xs[r][c4 * 4u + i] = xv[i]; }
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var wv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { wv[i] = ws[lid.x + 16u * i][k]; }
      for (var j = 0u; j < 4u; j++) {
        let xv = xs[lid.y + 16u * j][k];
        for (var i = 0u; i < 4u; i++) { acc[j][i] += xv * wv[i]; }
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < 4u; j++) {
    let m = m0 + lid.y + 16u * j;
    if (m >= M) { continue; }
    for (var i = 0u; i < 4u; i++) {
      let n = n0 + lid.x + 16u * i;
      if (n < p.N) { store(m, n, acc[j][i]); }
    }
  }
}

// ---- gather_rows: Y[m, :] = W[tokenIds[m], :] (embedding lookup), N = vocab rows ----
@compute @workgroup_size(64)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let m = wid.x;
  if (m >= num_rows_m()) { return; }
  let row = min(tokenIds[m], p.N - 1u);
  let groups = p.K >> 3u;
  for (var g = t; g < groups; g += 64u) {
    let w = load8(row, g);
    let o = m * p.K + 8u * g;
    for (var i = 0u; i < 4u; i++) {
      Y[o + i] = w.a[i];
      Y[o + 4u + i] = w.b[i];
    }
  }
}

// ---- matmul_rows / matvec_rows: the matmul for CPU-backed adapters (GpuTuning.barrierFree), every M.
// Each thread owns RR = 8 weight rows and MR_T = 2-8 tokens (matvec_rows: 1). Per 32-weight block
// it dequantizes each row four weights at a time (w4_at) and applies them to each of its tokens,
// so an X vec4 is read once per 8 rows and a weight dequantized once per MR_T tokens. No workgroup
// memory, no barrier, few live values: SwiftShader runs each invocation as a SIMD lane, emulates
// every storage load as a gather and spills what does not fit its registers. bench/matmul-kernels.ts
// times them beside the GPU kernels (at one token 1.5-3.9x less time than a subgroup per row);
// end to end they doubled prefill and made decode 1.6-2.8x faster on SwiftShader (BENCHMARKS.md).

// Where block `blk` (32 weights) of `row` lies and how it scales, computed once per block: word
// offsets (and Q6_K's bit offsets, for load32), and sc = (d, 8d) for Q4_0, (d, 0) for Q8_0, (d x scale, dmin x min)
// for Q4_K (so a Q4_0 or Q4_K weight is sc.x * raw - sc.y), the scales of the two 16-weight halves
// for Q6_K. F32 / F16 keep the word of the first weight.
struct Blk { w0: u32, w1: u32, sh0: u32, sh1: u32, sc: vec2<f32> }

fn blk_info(row: u32, blk: u32) -> Blk {
  let K = p.K;
  switch WTYPE {
    case 0u: { return Blk(row * K + 32u * blk, 0u, 0u, 0u, vec2<f32>(1.0, 0.0)); }
    case 1u: { return Blk((row * K + 32u * blk) >> 1u, 0u, 0u, 0u, vec2<f32>(1.0, 0.0)); }
    case 2u: { // Q4_0: 4 words of nibbles per block
      let b = row * (K >> 5u) + blk;
      let d = half_at(p.scaleOffWords * 2u + b);
      return Blk(4u * b, 0u, 0u, 0u, vec2<f32>(d, 8.0 * d));
    }
    case 8u: { // Q8_0: 8 words of signed bytes per block
      let b = row * (K >> 5u) + blk;
      return Blk(8u * b, 0u, 0u, 0u, vec2<f32>(half_at(p.scaleOffWords * 2u + b), 0.0));
    }
    case 12u: { // Q4_K: sub-block s of a 36-word super-block; its 32 nibbles in 8 words, low or high half
      let base = 36u * (row * (K >> 8u) + (blk >> 3u));
      let s = blk & 7u;
      return Blk(base + 4u + 8u * (s >> 1u), 0u, 4u * (s & 1u), 0u, q4k_scale_min(base, s));
    }
    case 14u: { // Q6_K: quarter qd of half n of a 52-word block: low 4 bits in ql, high 2 in qh
      let b = row * (K >> 8u) + (blk >> 3u);
      let s = blk & 7u;
      let n = s >> 2u;
      let qd = s & 3u;
      let base = 52u * b;
      let d = half_at(p.scaleOffWords * 2u + b);
      let scIdx = n * 8u + 2u * qd; // scale of weights 0..15; +1 for 16..31
      let scw = W[base + 48u + (scIdx >> 2u)];
      let sc = vec2<f32>(d * sbyte_of(scw, scIdx & 3u), d * sbyte_of(scw, (scIdx & 3u) + 1u));
      return Blk(base + 16u * n + 8u * (qd & 1u), base + 32u + 8u * n, select(0u, 4u, qd >= 2u), 2u * qd, sc);
    }
    default: { return Blk(0u, 0u, 0u, 0u, vec2<f32>(0.0)); }
  }
}

// Unpacking without shifts. SwiftShader's JIT (Subzero, SSE4.1) has no per-lane variable shift,
// so it splits every vector shift into one scalar shift per lane; an unpacker written with shifts
// spent most of the row kernels' time there. A field is instead masked in place and converted as a
// signed integer, which is exact (at most 8 significant bits), then scaled by a power of two: a
// nibble at bit s is f32(i32(w & (15 << s))) * 2^-s. A field that reaches bit 31 would read as
// negative, so its top bit is flipped first and the difference added back (Nib.flip / Nib.add).
struct Nib { mask: vec4<u32>, scale: vec4<f32>, flip: u32, add: f32 }
const NIB_LO = Nib(vec4<u32>(0xfu, 0xf00u, 0xf0000u, 0xf000000u), vec4<f32>(1.0, 0x1p-8, 0x1p-16, 0x1p-24), 0u, 0.0);
const NIB_HI = Nib(vec4<u32>(0xf0u, 0xf000u, 0xf00000u, 0xf0000000u), vec4<f32>(0x1p-4, 0x1p-12, 0x1p-20, 0x1p-28), 0x80000000u, 8.0);

// How to unpack weights 4i .. 4i + 3 of block blk: the nibbles a Q4_0 or Q4_K block keeps in its
// words (Q4_0 the low nibbles of its 4 words for i < 4, then their high nibbles; Q4_K the low or
// high nibbles of all 8 words, by sub-block), or Q6_K's low 4 bits (lo, from ql) and high 2 bits
// (hi, from qh, scaled by 16). The same for every row of a thread, so made once for all 8.
struct Unp { lo: Nib, hi: Nib }

fn nib_of(blk: u32, i: u32) -> Unp {
  let qd = blk & 3u; // Q6_K: which quarter of its half a 32-weight block is
  let hi = (WTYPE == 2u && i >= 4u) || (WTYPE == 12u && (blk & 1u) != 0u) || (WTYPE == 14u && qd >= 2u);
  let lo = Nib(select(NIB_LO.mask, NIB_HI.mask, hi), select(NIB_LO.scale, NIB_HI.scale, hi), select(0u, NIB_HI.flip, hi),
               select(0.0, NIB_HI.add, hi));
  if (WTYPE != 14u) { return Unp(lo, lo); }
  // Q6_K's 2 high bits of byte c lie at bit 8c + 2qd (placed by a multiply: a shift is what this
  // avoids); at qd = 3 byte 3's reach bit 31.
  let place = select(select(1u, 4u, qd == 1u), select(16u, 64u, qd == 3u), qd >= 2u); // 4^qd
  let crumb = Nib(vec4<u32>(3u, 0x300u, 0x30000u, 0x3000000u) * place, vec4<f32>(16.0, 0x1p-4, 0x1p-12, 0x1p-20) / f32(place),
                  select(0u, 0x80000000u, qd == 3u), select(0.0, 32.0, qd == 3u));
  return Unp(lo, crumb);
}

// The 4 nibbles of w that n selects, in place: nibble c times 1 / n.scale[c], less n.add in .w.
fn nib4_in_place(w: u32, n: Nib) -> vec4<f32> { return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w ^ n.flip) & n.mask)); }

// The 4 nibbles of w that n selects, as unsigned values 0..15.
fn nib4(w: u32, n: Nib) -> vec4<f32> {
  let v = nib4_in_place(w, n) * n.scale;
  return vec4<f32>(v.xyz, v.w + n.add);
}

// The word of a Q4_0 or Q4_K block that holds weights 4i .. 4i + 3.
fn nib_word(k: Blk, i: u32) -> u32 { return W[k.w0 + select(i, i & 3u, WTYPE == 2u)]; }

// The 4 signed bytes of w: bytes 0-2 are read offset by 128 (their top bit flipped), byte 3 as is.
fn sbytes4_ns(w: u32) -> vec4<f32> {
  let v = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w ^ 0x00808080u) & vec4<u32>(0xffu, 0xff00u, 0xff0000u, 0xff000000u)));
  return v * vec4<f32>(1.0, 0x1p-8, 0x1p-16, 0x1p-24) - vec4<f32>(128.0, 128.0, 128.0, 0.0);
}

// Weights 4i .. 4i + 3 (i < 8) of the block blk_info() described, as stored: the quant values
// before their scale and offset (floats as they are); w4_at applies those. u = nib_of(blk, i).
fn w4_raw(k: Blk, i: u32, u: Unp) -> vec4<f32> {
  switch WTYPE {
    case 0u: { return bitcast<vec4<f32>>(W4[(k.w0 >> 2u) + i]); }
    case 1u: { return vec4<f32>(unpack2x16float(W[k.w0 + 2u * i]), unpack2x16float(W[k.w0 + 2u * i + 1u])); }
    case 2u, 12u: { return nib4(nib_word(k, i), u.lo); } // Q4_0 weight j < 16: low nibble of byte j; 16 + j: its high nibble
    case 8u: { return sbytes4_ns(W[k.w0 + i]); }
    case 14u: { return nib4(W[k.w0 + i], u.lo) + nib4(W[k.w1 + i], u.hi); }
    default: { return vec4<f32>(0.0); }
  }
}

// Weights 4i .. 4i + 3 (i < 8) of the block blk_info() described, dequantized.
fn w4_at(k: Blk, i: u32, u: Unp) -> vec4<f32> {
  let raw = w4_raw(k, i, u);
  switch WTYPE {
    case 2u, 12u: { return raw * k.sc.x - k.sc.y; }
    case 8u: { return raw * k.sc.x; }
    case 14u: { return (raw - 32.0) * select(k.sc.y, k.sc.x, i < 4u); }
    default: { return raw; }
  }
}

const RR: u32 = 8u; // weight rows per thread

// The 8 rows' blocks and their weights at position i. Written out row by row, and the kernels
// below spell out their 8 dot products: SwiftShader keeps a function-scope array in registers only
// while every index is a constant, and a loop over the rows (or a helper taking a pointer to the
// weights) cost 1.3-1.9x (measured). Rows past N repeat the last row (never stored).
fn rows_info(n0: u32, blk: u32) -> array<Blk, RR> {
  let last = p.N - 1u;
  return array<Blk, RR>(
    blk_info(min(n0, last), blk), blk_info(min(n0 + 1u, last), blk), blk_info(min(n0 + 2u, last), blk),
    blk_info(min(n0 + 3u, last), blk), blk_info(min(n0 + 4u, last), blk), blk_info(min(n0 + 5u, last), blk),
    blk_info(min(n0 + 6u, last), blk), blk_info(min(n0 + 7u, last), blk));
}

fn rows_w4(info: ptr<function, array<Blk, RR>>, i: u32, u: Unp) -> array<vec4<f32>, RR> {
  return array<vec4<f32>, RR>(
    w4_at((*info)[0], i, u), w4_at((*info)[1], i, u), w4_at((*info)[2], i, u), w4_at((*info)[3], i, u),
    w4_at((*info)[4], i, u), w4_at((*info)[5], i, u), w4_at((*info)[6], i, u), w4_at((*info)[7], i, u));
}

fn rows_nib(info: ptr<function, array<Blk, RR>>, i: u32, n: Nib) -> array<vec4<f32>, RR> {
  return array<vec4<f32>, RR>(
    nib4_in_place(nib_word((*info)[0], i), n), nib4_in_place(nib_word((*info)[1], i), n),
    nib4_in_place(nib_word((*info)[2], i), n), nib4_in_place(nib_word((*info)[3], i), n),
    nib4_in_place(nib_word((*info)[4], i), n), nib4_in_place(nib_word((*info)[5], i), n),
    nib4_in_place(nib_word((*info)[6], i), n), nib4_in_place(nib_word((*info)[7], i), n));
}

// The 8 rows' block scales and offsets (Blk.sc): sc.x of rows 0-3, 4-7, then sc.y of rows 0-3, 4-7.
fn rows_sc(info: ptr<function, array<Blk, RR>>) -> array<vec4<f32>, 4> {
  let i = *info;
  return array<vec4<f32>, 4>(vec4<f32>(i[0].sc.x, i[1].sc.x, i[2].sc.x, i[3].sc.x), vec4<f32>(i[4].sc.x, i[5].sc.x, i[6].sc.x, i[7].sc.x),
                             vec4<f32>(i[0].sc.y, i[1].sc.y, i[2].sc.y, i[3].sc.y), vec4<f32>(i[4].sc.y, i[5].sc.y, i[6].sc.y, i[7].sc.y));
}

// a + the dot products of the 8 rows' weights w with x (rows 0-3 in a[0], 4-7 in a[1]). Taking w
// and a by value keeps them in registers on SwiftShader (measured: as fast as the products written
// out in place; through a pointer to w the kernels were 1.3-1.9x slower).
fn dot8(a: array<vec4<f32>, 2>, w: array<vec4<f32>, RR>, x: vec4<f32>) -> array<vec4<f32>, 2> {
  return array<vec4<f32>, 2>(a[0] + vec4<f32>(dot(w[0], x), dot(w[1], x), dot(w[2], x), dot(w[3], x)),
                             a[1] + vec4<f32>(dot(w[4], x), dot(w[5], x), dot(w[6], x), dot(w[7], x)));
}

// matvec_rows' Q4_0 / Q4_K sums over a block, for its 8 rows: their nibbles . X, sum X, and what the
// flipped top nibbles lost (add * X.w). Word j and word j + wb (nibbles nA and nB) hold weights
// 4j .. 4j + 3 and 16 + 4j .. 16 + 4j + 3, X vec4s xv + j and xv + 4 + j (of array X); X is scaled
// to the nibbles' places. nA and nB are constants at every call, so the masks and scales are too (chosen at run
// time they cost 1.4x here).
struct Q4Sums { sr: array<vec4<f32>, 2>, sx: vec4<f32>, s3: f32 }

fn q4_sums(info: ptr<function, array<Blk, RR>>, wb: u32, nA: Nib, nB: Nib, xv: u32) -> Q4Sums {
  var o = Q4Sums(array<vec4<f32>, 2>(), vec4<f32>(0.0), 0.0);
  for (var j = 0u; j < 4u; j++) {
    let xa = X[xv + j];
    let xb = X[xv + 4u + j];
    o.sx += xa + xb;
    o.s3 += nA.add * xa.w + nB.add * xb.w;
    o.sr = dot8(o.sr, rows_nib(info, j, nA), xa * nA.scale);
    o.sr = dot8(o.sr, rows_nib(info, j + wb, nB), xb * nB.scale);
  }
  return o;
}

// A ragged tail of 8-weight groups (float rows whose length is not a multiple of 32): row r, token at X row xr.
fn tail_dot(n: u32, xr: u32) -> f32 {
  let kv4 = p.K >> 2u;
  var s = 0.0;
  for (var g = 4u * (p.K >> 5u); g < (p.K >> 3u); g++) {
    let w = load8(n, g);
    s += dot(w.a, X[xr * kv4 + 2u * g]) + dot(w.b, X[xr * kv4 + 2u * g + 1u]);
  }
  return s;
}

// matmul_rows: 8 rows x MR_T tokens a thread, MR_T = 2, 4 or 8 (the host picks the smallest that
// holds M, so a step of 2-4 tokens does not pay for 8). The tokens are spelled out like the rows,
// each with its own accumulators: indexed by a token loop they lived in memory, and this form
// took 1.3-1.75x less time at M = 8 and 64 (measured on SwiftShader). Tokens past M repeat the
// last row of X (never stored); the `MR_T > t` tests are constants after pipeline creation.
override MR_T: u32 = 8u;

@compute @workgroup_size(8, 8)
fn matmul_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = num_rows_m();
  let n0 = gid.x * RR;
  let m0 = gid.y * MR_T;
  if (n0 >= p.N || m0 >= M) { return; }
  let kv4 = p.K >> 2u;
  let xr0 = p.xRowOffset + m0;
  let xLast = vec4<u32>(p.xRowOffset + M - 1u);
  let xoA = min(vec4<u32>(xr0) + vec4<u32>(0u, 1u, 2u, 3u), xLast) * kv4;
  let xoB = min(vec4<u32>(xr0) + vec4<u32>(4u, 5u, 6u, 7u), xLast) * kv4;
  var a0: array<vec4<f32>, 2>; // token m0 + 0, rows n0 .. n0 + 7
  var a1: array<vec4<f32>, 2>; // token m0 + 1, rows n0 .. n0 + 7
  var a2: array<vec4<f32>, 2>; // token m0 + 2, rows n0 .. n0 + 7
  var a3: array<vec4<f32>, 2>; // token m0 + 3, rows n0 .. n0 + 7
  var a4: array<vec4<f32>, 2>; // token m0 + 4, rows n0 .. n0 + 7
  var a5: array<vec4<f32>, 2>; // token m0 + 5, rows n0 .. n0 + 7
  var a6: array<vec4<f32>, 2>; // token m0 + 6, rows n0 .. n0 + 7
  var a7: array<vec4<f32>, 2>; // token m0 + 7, rows n0 .. n0 + 7
  let blocks = p.K >> 5u;
  for (var b = 0u; b < blocks; b++) {
    var info = rows_info(n0, b);
    for (var i = 0u; i < 8u; i++) {
      let w = rows_w4(&info, i, nib_of(b, i));
      let c = 8u * b + i;
      let x0 = X[xoA.x + c];
      a0 = dot8(a0, w, x0);
      let x1 = X[xoA.y + c];
      a1 = dot8(a1, w, x1);
      if (MR_T > 2u) {
        let x2 = X[xoA.z + c];
        a2 = dot8(a2, w, x2);
        let x3 = X[xoA.w + c];
        a3 = dot8(a3, w, x3);
      }
      if (MR_T > 4u) {
        let x4 = X[xoB.x + c];
        a4 = dot8(a4, w, x4);
        let x5 = X[xoB.y + c];
        a5 = dot8(a5, w, x5);
        let x6 = X[xoB.z + c];
        a6 = dot8(a6, w, x6);
        let x7 = X[xoB.w + c];
        a7 = dot8(a7, w, x7);
      }
    }
  }
  var acc = array<array<vec4<f32>, 2>, 8>(a0, a1, a2, a3, a4, a5, a6, a7);
  let nRows = min(RR, p.N - n0);
  let nToks = min(MR_T, M - m0);
  for (var j = 0u; j < nToks; j++) {
    for (var r = 0u; r < nRows; r++) {
      var v = acc[j][r >> 2u][r & 3u];
      if ((p.K & 31u) != 0u) { v += tail_dot(n0 + r, xr0 + j); }
      store(m0 + j, n0 + r, v);
    }
  }
}

@compute @workgroup_size(16)
fn matvec_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
  let n0 = ((wid.y * nwg.x + wid.x) * 16u + t) * RR;
  if (n0 >= p.N || num_rows_m() == 0u) { return; }
  let kv4 = p.K >> 2u;
  let xo = p.xRowOffset * kv4;
  var acc: array<vec4<f32>, 2>;
  acc[0] = vec4<f32>(0.0);
  acc[1] = vec4<f32>(0.0);
  let blocks = p.K >> 5u;
  for (var b = 0u; b < blocks; b++) {
    var info = rows_info(n0, b);
    if (WTYPE == 2u || WTYPE == 12u) {
      // Q4_0, Q4_K: the block's nibbles meet X first, and its scale and offset apply once per row
      // (sum (a q - b) x = a (q . x) - b sum x), not per weight: 1.3-1.6x less time for these
      // kernels on SwiftShader. The nibbles stay where they lie in their word and X is scaled to
      // match instead, once for all 8 rows (s3 adds back what the flipped top nibble lost). Q8_0
      // and Q6_K measured slower this way (more live values for fewer saved operations), so they
      // dequantize per weight like the floats.
      var q: Q4Sums;
      if (WTYPE == 2u) {
        q = q4_sums(&info, 0u, NIB_LO, NIB_HI, xo + 8u * b);
      } else if ((b & 1u) == 0u) {
        q = q4_sums(&info, 4u, NIB_LO, NIB_LO, xo + 8u * b);
      } else {
        q = q4_sums(&info, 4u, NIB_HI, NIB_HI, xo + 8u * b);
      }
      let xs = dot(q.sx, vec4<f32>(1.0));
      let sc = rows_sc(&info);
      acc[0] += sc[0] * (q.sr[0] + q.s3) - sc[2] * xs;
      acc[1] += sc[1] * (q.sr[1] + q.s3) - sc[3] * xs;
    } else {
      for (var i = 0u; i < 8u; i++) {
        let w = rows_w4(&info, i, nib_of(b, i));
        let x = X[xo + 8u * b + i];
        acc = dot8(acc, w, x);
      }
    }
  }
  let nRows = min(RR, p.N - n0);
  for (var r = 0u; r < nRows; r++) {
    var v = acc[r >> 2u][r & 3u];
    if ((p.K & 31u) != 0u) { v += tail_dot(n0 + r, p.xRowOffset); }
    store(0u, n0 + r, v);
  }
}

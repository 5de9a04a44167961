// Causal grouped-query attention over a paged KV cache, for any mix of prefill and decode tokens
// of several sequences in one step. Token m belongs to the sequence in table row tokMeta[m].y and
// its K/V sit at slot position z = tokMeta[m].z: it attends to that sequence's keys 0 ..= z, key j
// in block tables[row * blocksPerSeq + j / blockSize] at row j % blockSize, except that key z - b
// for b < 32 is skipped when bit b of tokMeta[m].w is clear. A plain token has w = all ones; a
// token-tree node (speculative decoding, src/spec/tree.ts) sets the bits of its ancestors only, so
// sibling branches fed in one pass do not see each other (the tree attention mask). One workgroup
// per (query token, head), or S per pair split over the key chunks when a step has few pairs
// (decode: flash-decoding's split-K, merged by `combine`); keys are streamed in chunks of 64 with
// an online softmax, so any context length fits in fixed workgroup memory. headDim <= 256.

struct Params {
  numHeads: u32,
  numKvHeads: u32,
  headDim: u32,
  scale: f32, // 1 / sqrt(headDim)
  qStride: u32, // row stride of Q in elements (0: numHeads * headDim; a fused qkv row is wider)
  blockShift: u32,   // log2(block size)
  blocksPerSeq: u32, // row length of `tables`
  _p2: u32,
}
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read> Q: array<f32>;          // [M, qStride] f32, head h at h * headDim
@group(0) @binding(1) var<storage, read> Kc: array<f32>;         // [numBlocks * blockSize, numKvHeads, headDim] f32
@group(0) @binding(2) var<storage, read> Vc: array<f32>;         // [numBlocks * blockSize, numKvHeads, headDim] f32
@group(0) @binding(3) var<storage, read_write> O: array<f32>;    // [M, numHeads, headDim] f32
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<storage, read> tokMeta: array<vec4<u32>>; // [M] (RoPE position, sequence row of `tables`, KV slot position, visibility of the 32 keys up to the slot)
@group(0) @binding(7) var<storage, read> tables: array<u32>;        // [sequence rows, blocksPerSeq] block ids

// Cache row of position `pos` of the sequence in table row `seqRow`.
fn kv_slot(seqRow: u32, pos: u32) -> u32 {
  let b = tables[seqRow * p.blocksPerSeq + (pos >> p.blockShift)];
  return (b << p.blockShift) | (pos & ((1u << p.blockShift) - 1u));
}

// Whether token meta `tm` sees key j (j <= its slot): all keys more than 31 before the slot, the
// others by their bit of the mask.
fn visible(tm: vec4<u32>, j: u32) -> bool {
  let b = tm.z - j;
  return b >= 32u || ((tm.w >> b) & 1u) != 0u;
}

fn q_stride() -> u32 { return select(p.numHeads * p.headDim, p.qStride, p.qStride != 0u); }

const WG: u32 = 64u;
const MAX_HD: u32 = 256u;
var<workgroup> qs: array<f32, MAX_HD>;
var<workgroup> qs4: array<vec4<f32>, MAX_HD / 4u>;
var<workgroup> sc: array<f32, WG>;
var<workgroup> red: array<f32, WG>;

// The same K cache read as vec4s (headDim a multiple of 4: 16-byte loads in the score loop).
@group(0) @binding(8) var<storage, read> Kc4: array<vec4<f32>>;
// Split-K partials (the host sets num_workgroups.z = S > 1 when a step has few (token, head) pairs,
// as in decode): for part q = (m * numHeads + h) * S + s, part[2q] and part[2q + 1] hold the
// running max and sum of split s, part[PART_ACC + q * headDim + d] its unnormalized output.
@group(0) @binding(9) var<storage, read_write> part: array<f32>;
const PART_ACC: u32 = 512u; // 2 x the most parts (S x tokens x heads <= 256)

// One workgroup per (head, token, split): split s of S takes the key chunks s, s + S, s + 2S, ...
// With S = 1 it writes O; otherwise its partial, which `combine` merges.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let h = wid.x;
  let m = wid.y;
  let S = nwg.z;
  let sp = wid.z;
  if (m >= step.numTokens) { return; }
  let hd = p.headDim;
  let kvh = h / (p.numHeads / p.numKvHeads);
  let qb = m * q_stride() + h * hd;
  let ob = (m * p.numHeads + h) * hd;
  let vec4Keys = (hd & 3u) == 0u;
  if (vec4Keys) {
    for (var d4 = t; d4 < hd / 4u; d4 += WG) {
      let b = qb + 4u * d4;
      qs4[d4] = vec4<f32>(Q[b], Q[b + 1u], Q[b + 2u], Q[b + 3u]) * p.scale;
    }
  } else {
    for (var d = t; d < hd; d += WG) { qs[d] = Q[qb + d] * p.scale; }
  }
  workgroupBarrier();

  let tm = tokMeta[m];
  let nKeys = tm.z + 1u; // causal: keys 0 ..= own slot (key 0 is always visible)
  let kvStride = p.numKvHeads * hd;
  var runMax = -3.0e38;
  var runSum = 0.0;
  var acc: array<f32, 4>; // dims t, t+64, t+128, t+192
  for (var c0 = sp * WG; c0 < nKeys; c0 += S * WG) {
    let j = c0 + t;
    var s = -3.0e38;
    if (j < nKeys && visible(tm, j)) {
      let kb = kv_slot(tm.y, j) * kvStride + kvh * hd;
      var dotv = 0.0;
      if (vec4Keys) {
        let kb4 = kb >> 2u;
        for (var d4 = 0u; d4 < hd / 4u; d4++) { dotv += dot(qs4[d4], Kc4[kb4 + d4]); }
      } else {
        for (var d = 0u; d < hd; d++) { dotv += qs[d] * Kc[kb + d]; }
      }
      s = dotv;
    }
    sc[t] = s;
    red[t] = s;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
      if (t < st) { red[t] = max(red[t], red[t + st]); }
      workgroupBarrier();
    }
    let newMax = max(runMax, red[0]);
    let corr = exp(runMax - newMax);
    let cnt = min(WG, nKeys - c0);
    var chunkSum = 0.0;
    for (var i = 0u; i < 4u; i++) { acc[i] *= corr; }
    for (var jj = 0u; jj < cnt; jj++) {
      if (sc[jj] <= -3.0e38) { continue; } // masked: its V row may be another branch's garbage
      let pj = exp(sc[jj] - newMax);
      chunkSum += pj;
      let vb = kv_slot(tm.y, c0 + jj) * kvStride + kvh * hd;
      for (var i = 0u; i < 4u; i++) {
        let d = t + WG * i;
        if (d < hd) { acc[i] += pj * Vc[vb + d]; }
      }
    }
    runSum = runSum * corr + chunkSum;
    runMax = newMax;
    workgroupBarrier();
  }
  if (S == 1u) {
    for (var i = 0u; i < 4u; i++) {
      let d = t + WG * i;
      if (d < hd) { O[ob + d] = acc[i] / runSum; }
    }
    return;
  }
  // A split with no keys leaves max -3e38 and sum 0, which `combine` weighs as zero.
  let q = (m * p.numHeads + h) * S + sp;
  if (t == 0u) {
    part[2u * q] = runMax;
    part[2u * q + 1u] = runSum;
  }
  for (var i = 0u; i < 4u; i++) {
    let d = t + WG * i;
    if (d < hd) { part[PART_ACC + q * hd + d] = acc[i]; }
  }
}

// Merges the S partials of each (head, token) into O: weights exp(max_s - max) on each split's sum
// and output. Dispatched with `main`'s grid (numHeads, tokens, S) so that it reads S from it; only
// the z = 0 workgroups work.
@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) t: u32) {
  let h = wid.x;
  let m = wid.y;
  let SPLITS = nwg.z;
  if (m >= step.numTokens || wid.z != 0u) { return; }
  let hd = p.headDim;
  let q0 = (m * p.numHeads + h) * SPLITS;
  var mx = -3.0e38;
  for (var s = 0u; s < SPLITS; s++) { mx = max(mx, part[2u * (q0 + s)]); }
  var sum = 0.0;
  for (var s = 0u; s < SPLITS; s++) { sum += exp(part[2u * (q0 + s)] - mx) * part[2u * (q0 + s) + 1u]; }
  let ob = (m * p.numHeads + h) * hd;
  for (var d = t; d < hd; d += WG) {
    var o = 0.0;
    for (var s = 0u; s < SPLITS; s++) { o += exp(part[2u * (q0 + s)] - mx) * part[PART_ACC + (q0 + s) * hd + d]; }
    O[ob + d] = o / sum;
  }
}

// Barrier-free variant for CPU-backed adapters (GpuTuning.barrierFree). On SwiftShader every
// storage load whose address is not a compile-time constant is a per-lane gather, and a private
// array indexed by a loop variable lives in memory, so this kernel is shaped to share loads:
// - Each thread owns one head of a quad of consecutive step tokens (4q .. 4q + 3) and walks the
//   quad's runs of tokens of one sequence. A lone token (decode) takes `attend_one`; a run of 2–4
//   (a prefill chunk, a draft tree) takes `attend_run`, which loads each K and V element once for
//   all of the run's tokens instead of once per token.
// - Keys go 8 at a time, their scores and weights in two vec4s per token, so a Q element is loaded
//   and an output row rewritten once per 8 keys, not per key.
// Small workgroups (4 threads: 4 heads of one quad, so a workgroup's threads take the same
// branches): a decode step has few threads, and each workgroup runs on one CPU core.
const ROWS_WG: u32 = 4u;
@compute @workgroup_size(ROWS_WG)
fn attend_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.y * nwg.x * ROWS_WG + gid.x;
  let quads = (step.numTokens + 3u) / 4u;
  if (idx >= quads * p.numHeads) { return; }
  let h = idx % p.numHeads;
  let qEnd = min(step.numTokens, (idx / p.numHeads) * 4u + 4u);
  var m = (idx / p.numHeads) * 4u;
  loop {
    if (m >= qEnd) { break; }
    let row = tokMeta[m].y;
    var e = m + 1u;
    loop {
      if (e >= qEnd || tokMeta[e].y != row) { break; }
      e++;
    }
    if (e == m + 1u) {
      attend_one(m, h);
    } else {
      attend_run(m, e - m, h);
    }
    m = e;
  }
}

// Token m, head h: keys 8 at a time. A key past the last or hidden by the tree mask reads key j0
// and weighs 0.
fn attend_one(m: u32, h: u32) {
  let hd = p.headDim;
  let kvh = h / (p.numHeads / p.numKvHeads);
  let qb = m * q_stride() + h * hd;
  let ob = (m * p.numHeads + h) * hd;
  let kvStride = p.numKvHeads * hd;
  let tm = tokMeta[m];
  let nKeys = tm.z + 1u;
  var o: array<f32, MAX_HD>;
  for (var d = 0u; d < hd; d++) { o[d] = 0.0; }
  var st = vec2<f32>(-3.0e38, 0.0); // running max, running sum
  let off = kvh * hd;
  for (var j0 = 0u; j0 < nKeys; j0 += 8u) {
    let jA = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    let jB = jA + vec4<u32>(4u);
    let visA = sees4(tm, jA);
    let visB = sees4(tm, jB);
    let kA = key_rows4(tm.y, j0, jA, visA, kvStride, off);
    let kB = key_rows4(tm.y, j0, jB, visB, kvStride, off);
    var sA = vec4<f32>(0.0);
    var sB = vec4<f32>(0.0);
    for (var d = 0u; d < hd; d++) {
      let q = Q[qb + d];
      sA += q * vec4<f32>(Kc[kA.x + d], Kc[kA.y + d], Kc[kA.z + d], Kc[kA.w + d]);
      sB += q * vec4<f32>(Kc[kB.x + d], Kc[kB.y + d], Kc[kB.z + d], Kc[kB.w + d]);
    }
    var pA: vec4<f32>;
    var pB: vec4<f32>;
    let r = chunk_softmax(st, sA * p.scale, sB * p.scale, visA, visB, &pA, &pB);
    st = r.xy;
    for (var d = 0u; d < hd; d++) {
      let vA = vec4<f32>(Vc[kA.x + d], Vc[kA.y + d], Vc[kA.z + d], Vc[kA.w + d]);
      let vB = vec4<f32>(Vc[kB.x + d], Vc[kB.y + d], Vc[kB.z + d], Vc[kB.w + d]);
      o[d] = o[d] * r.z + dot(pA, vA) + dot(pB, vB);
    }
  }
  for (var d = 0u; d < hd; d++) { O[ob + d] = o[d] / st.y; }
}

// Cache element offsets of the 4 keys jA of the sequence in table row `row` (head offset `off`); a
// key not `seen` reads key j0 instead (it weighs 0; j0 is a row of this sequence, so finite).
fn key_rows4(row: u32, j0: u32, jA: vec4<u32>, seen: vec4<bool>, kvStride: u32, off: u32) -> vec4<u32> {
  let j = select(vec4<u32>(j0), jA, seen);
  return vec4<u32>(kv_slot(row, j.x), kv_slot(row, j.y), kv_slot(row, j.z), kv_slot(row, j.w)) * kvStride + off;
}

// Which of the 4 keys jA token meta `tm` sees: keys 0 ..= its slot, by the tree mask.
fn sees4(tm: vec4<u32>, jA: vec4<u32>) -> vec4<bool> {
  return vec4<bool>(jA.x <= tm.z && visible(tm, jA.x), jA.y <= tm.z && visible(tm, jA.y),
                    jA.z <= tm.z && visible(tm, jA.z), jA.w <= tm.z && visible(tm, jA.w));
}

// Online-softmax update of one token's state (x: running max, y: running sum) by the 8 scores
// (sA, sB) of a key chunk, visA / visB the keys it sees. Returns (new max, new sum, correction of
// the old terms) and writes the chunk's weights to wA, wB.
fn chunk_softmax(st: vec2<f32>, sA: vec4<f32>, sB: vec4<f32>, visA: vec4<bool>, visB: vec4<bool>,
                 wA: ptr<function, vec4<f32>>, wB: ptr<function, vec4<f32>>) -> vec3<f32> {
  let lo = vec4<f32>(-3.0e38);
  let ms = max(select(lo, sA, visA), select(lo, sB, visB));
  let newMax = max(st.x, max(max(ms.x, ms.y), max(ms.z, ms.w)));
  let corr = exp(st.x - newMax);
  *wA = select(vec4<f32>(0.0), exp(sA - newMax), visA);
  *wB = select(vec4<f32>(0.0), exp(sB - newMax), visB);
  return vec3<f32>(newMax, st.y * corr + dot(*wA + *wB, vec4<f32>(1.0)), corr);
}

// Tokens m0 .. m0 + cnt - 1 (2 <= cnt <= 4) of one sequence, head h: each K and V element is
// loaded once for all of them. Slots past cnt repeat the last token and are not written. Keys go
// 8 at a time up to the run's last slot; a key no token of the run sees reads key j0 and weighs 0.
fn attend_run(m0: u32, cnt: u32, h: u32) {
  let hd = p.headDim;
  let kvh = h / (p.numHeads / p.numKvHeads);
  let qStr = q_stride();
  let kvStride = p.numKvHeads * hd;
  let off = kvh * hd;
  let mm = vec4<u32>(m0) + min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(cnt - 1u));
  let t0 = tokMeta[mm.x];
  let t1 = tokMeta[mm.y];
  let t2 = tokMeta[mm.z];
  let t3 = tokMeta[mm.w];
  let qb = mm * qStr + vec4<u32>(h * hd);
  let row = t0.y;
  let nKeys = max(max(t0.z, t1.z), max(t2.z, t3.z)) + 1u;
  var o0: array<f32, MAX_HD>;
  var o1: array<f32, MAX_HD>;
  var o2: array<f32, MAX_HD>;
  var o3: array<f32, MAX_HD>;
  for (var d = 0u; d < hd; d++) {
    o0[d] = 0.0;
    o1[d] = 0.0;
    o2[d] = 0.0;
    o3[d] = 0.0;
  }
  var st0 = vec2<f32>(-3.0e38, 0.0);
  var st1 = st0;
  var st2 = st0;
  var st3 = st0;
  for (var j0 = 0u; j0 < nKeys; j0 += 8u) {
    let jA = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    let jB = jA + vec4<u32>(4u);
    let v0A = sees4(t0, jA);
    let v1A = sees4(t1, jA);
    let v2A = sees4(t2, jA);
    let v3A = sees4(t3, jA);
    let v0B = sees4(t0, jB);
    let v1B = sees4(t1, jB);
    let v2B = sees4(t2, jB);
    let v3B = sees4(t3, jB);
    let anyA = v0A | v1A | v2A | v3A;
    let anyB = v0B | v1B | v2B | v3B;
    let kA = key_rows4(row, j0, jA, anyA, kvStride, off);
    let kB = key_rows4(row, j0, jB, anyB, kvStride, off);
    var s0A = vec4<f32>(0.0);
    var s1A = vec4<f32>(0.0);
    var s2A = vec4<f32>(0.0);
    var s3A = vec4<f32>(0.0);
    var s0B = vec4<f32>(0.0);
    var s1B = vec4<f32>(0.0);
    var s2B = vec4<f32>(0.0);
    var s3B = vec4<f32>(0.0);
    for (var d = 0u; d < hd; d++) {
      let ka = vec4<f32>(Kc[kA.x + d], Kc[kA.y + d], Kc[kA.z + d], Kc[kA.w + d]);
      let kb = vec4<f32>(Kc[kB.x + d], Kc[kB.y + d], Kc[kB.z + d], Kc[kB.w + d]);
      let q0 = Q[qb.x + d];
      let q1 = Q[qb.y + d];
      let q2 = Q[qb.z + d];
      let q3 = Q[qb.w + d];
      s0A += q0 * ka;
      s1A += q1 * ka;
      s2A += q2 * ka;
      s3A += q3 * ka;
      s0B += q0 * kb;
      s1B += q1 * kb;
      s2B += q2 * kb;
      s3B += q3 * kb;
    }
    var w0A: vec4<f32>;
    var w1A: vec4<f32>;
    var w2A: vec4<f32>;
    var w3A: vec4<f32>;
    var w0B: vec4<f32>;
    var w1B: vec4<f32>;
    var w2B: vec4<f32>;
    var w3B: vec4<f32>;
    let r0 = chunk_softmax(st0, s0A * p.scale, s0B * p.scale, v0A, v0B, &w0A, &w0B);
    let r1 = chunk_softmax(st1, s1A * p.scale, s1B * p.scale, v1A, v1B, &w1A, &w1B);
    let r2 = chunk_softmax(st2, s2A * p.scale, s2B * p.scale, v2A, v2B, &w2A, &w2B);
    let r3 = chunk_softmax(st3, s3A * p.scale, s3B * p.scale, v3A, v3B, &w3A, &w3B);
    st0 = r0.xy;
    st1 = r1.xy;
    st2 = r2.xy;
    st3 = r3.xy;
    for (var d = 0u; d < hd; d++) {
      let va = vec4<f32>(Vc[kA.x + d], Vc[kA.y + d], Vc[kA.z + d], Vc[kA.w + d]);
      let vb = vec4<f32>(Vc[kB.x + d], Vc[kB.y + d], Vc[kB.z + d], Vc[kB.w + d]);
      o0[d] = o0[d] * r0.z + dot(w0A, va) + dot(w0B, vb);
      o1[d] = o1[d] * r1.z + dot(w1A, va) + dot(w1B, vb);
      o2[d] = o2[d] * r2.z + dot(w2A, va) + dot(w2B, vb);
      o3[d] = o3[d] * r3.z + dot(w3A, va) + dot(w3B, vb);
    }
  }
  let ob = (mm * p.numHeads + vec4<u32>(h)) * hd;
  for (var d = 0u; d < hd; d++) {
    O[ob.x + d] = o0[d] / st0.y;
    O[ob.y + d] = o1[d] / st1.y;
    if (cnt > 2u) { O[ob.z + d] = o2[d] / st2.y; }
    if (cnt > 3u) { O[ob.w + d] = o3[d] / st3.y; }
  }
}

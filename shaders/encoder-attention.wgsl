// Bidirectional (non-causal) multi-head attention of one sequence over its own keys, for encoders (BERT):
// every token attends to all step.numTokens tokens. Q, K and V come packed in one [M, qkvStride] row per
// token (the fused q|k|v matmul output): head h of Q at h * headDim, of K at kOffset + h * headDim, of V at
// vOffset + h * headDim. Keys are streamed with an online softmax, so any sequence length fits. headDim <= 256.

struct Params {
  numHeads: u32,
  headDim: u32,
  scale: f32, // 1 / sqrt(headDim)
  qkvStride: u32,
  kOffset: u32,
  vOffset: u32,
  _p0: u32,
  _p1: u32,
}
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read> QKV: array<f32>;       // [M, qkvStride] f32
@group(0) @binding(1) var<storage, read_write> O: array<f32>;   // [M, numHeads, headDim] f32
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

const WG: u32 = 64u;
const MAX_HD: u32 = 256u;
var<workgroup> qs: array<f32, MAX_HD>;
var<workgroup> sc: array<f32, WG>;
var<workgroup> red: array<f32, WG>;

// One workgroup per (query token, head): 64 keys scored at a time, then folded into the running softmax.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let h = wid.x;
  let m = wid.y;
  let nKeys = step.numTokens;
  if (m >= nKeys) { return; }
  let hd = p.headDim;
  let qb = m * p.qkvStride + h * hd;
  let ob = (m * p.numHeads + h) * hd;
  for (var d = t; d < hd; d += WG) { qs[d] = QKV[qb + d] * p.scale; }
  workgroupBarrier();
  var runMax = -3.0e38;
  var runSum = 0.0;
  var acc: array<f32, 4>; // dims t, t+64, t+128, t+192
  for (var c0 = 0u; c0 < nKeys; c0 += WG) {
    let j = c0 + t;
    var s = -3.0e38;
    if (j < nKeys) {
      let kb = j * p.qkvStride + p.kOffset + h * hd;
      var dotv = 0.0;
      for (var d = 0u; d < hd; d++) { dotv += qs[d] * QKV[kb + d]; }
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
      let pj = exp(sc[jj] - newMax);
      chunkSum += pj;
      let vb = (c0 + jj) * p.qkvStride + p.vOffset + h * hd;
      for (var i = 0u; i < 4u; i++) {
        let d = t + WG * i;
        if (d < hd) { acc[i] += pj * QKV[vb + d]; }
      }
    }
    runSum = runSum * corr + chunkSum;
    runMax = newMax;
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let d = t + WG * i;
    if (d < hd) { O[ob + d] = acc[i] / runSum; }
  }
}

// Barrier-free variant for CPU-backed adapters (GpuTuning.barrierFree): one thread per (query token, head)
// walks all keys with an online softmax, its output row in private memory.
@compute @workgroup_size(64)
fn attend_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.y * nwg.x * 64u + gid.x;
  let nKeys = step.numTokens;
  if (idx >= nKeys * p.numHeads) { return; }
  let h = idx % p.numHeads;
  let m = idx / p.numHeads;
  let hd = p.headDim;
  let qb = m * p.qkvStride + h * hd;
  let ob = (m * p.numHeads + h) * hd;
  var o: array<f32, MAX_HD>;
  for (var d = 0u; d < hd; d++) { o[d] = 0.0; }
  var runMax = -3.0e38;
  var runSum = 0.0;
  for (var j = 0u; j < nKeys; j++) {
    let kb = j * p.qkvStride + p.kOffset + h * hd;
    let vb = j * p.qkvStride + p.vOffset + h * hd;
    var s = 0.0;
    for (var d = 0u; d < hd; d++) { s += QKV[qb + d] * QKV[kb + d]; }
    s *= p.scale;
    let newMax = max(runMax, s);
    let corr = exp(runMax - newMax);
    let pj = exp(s - newMax);
    runSum = runSum * corr + pj;
    for (var d = 0u; d < hd; d++) { o[d] = o[d] * corr + pj * QKV[vb + d]; }
    runMax = newMax;
  }
  for (var d = 0u; d < hd; d++) { O[ob + d] = o[d] / runSum; }
}

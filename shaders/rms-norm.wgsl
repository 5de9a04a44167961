// RMSNorm: Y[m, :] = X[m, :] / sqrt(mean(X[m, :]^2) + eps) * weight. One workgroup per row.
// With gather set, rows rowIdx[r] are normalized into rows r < step.numOut (the tokens whose
// logits the step needs: each sequence's last token, so the lm head reads only those).

struct Params {
  D: u32,
  eps: f32,
  gather: u32,
  _pad: u32,
}
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read> X: array<f32>;          // [M, D] f32
@group(0) @binding(1) var<storage, read> weight: array<f32>;     // [D] f32
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;    // [M, D] f32 (or [numOut, D] when gather)
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<storage, read> rowIdx: array<u32>;     // [numOut] u32 token rows to gather

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  var inRow = wid.x;
  var outRow = wid.x;
  if (p.gather != 0u) {
    if (wid.x >= step.numOut) { return; }
    inRow = rowIdx[wid.x];
  } else if (wid.x >= step.numTokens) {
    return;
  }
  let xb = inRow * p.D;
  var ss = 0.0;
  for (var i = t; i < p.D; i += WG) {
    let v = X[xb + i];
    ss += v * v;
  }
  red[t] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(red[0] / f32(p.D) + p.eps);
  let yb = outRow * p.D;
  for (var i = t; i < p.D; i += WG) {
    Y[yb + i] = X[xb + i] * scale * weight[i];
  }
}

// Barrier-free variant for CPU-backed adapters (GpuTuning.barrierFree): one thread per row.
@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  var inRow = gid.x;
  var outRow = gid.x;
  if (p.gather != 0u) {
    if (gid.x >= step.numOut) { return; }
    inRow = rowIdx[gid.x];
  } else if (gid.x >= step.numTokens) {
    return;
  }
  let xb = inRow * p.D;
  var ss = 0.0;
  for (var i = 0u; i < p.D; i++) {
    let v = X[xb + i];
    ss += v * v;
  }
  let scale = 1.0 / sqrt(ss / f32(p.D) + p.eps);
  let yb = outRow * p.D;
  for (var i = 0u; i < p.D; i++) { Y[yb + i] = X[xb + i] * scale * weight[i]; }
}

// RMSNorm: Y[m, :] = X[m, :] / sqrt(mean(X[m, :]^2) + eps) * weight. One workgroup per row.
// With lastOnly set, only the step's last token is normalized into row 0 (feeds the lm head).

struct Params {
  D: u32,
  eps: f32,
  lastOnly: u32,
  _pad: u32,
}
struct Step { numTokens: u32, startPos: u32, seqLen: u32, counter: u32 }

@group(0) @binding(0) var<storage, read> X: array<f32>;          // [M, D] f32
@group(0) @binding(1) var<storage, read> weight: array<f32>;     // [D] f32
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;    // [M, D] f32 (or [1, D] when lastOnly)
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  var inRow = wid.x;
  var outRow = wid.x;
  if (p.lastOnly != 0u) {
    if (wid.x != 0u) { return; }
    inRow = step.numTokens - 1u;
    outRow = 0u;
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
  if (p.lastOnly != 0u) {
    if (gid.x != 0u) { return; }
    inRow = step.numTokens - 1u;
    outRow = 0u;
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

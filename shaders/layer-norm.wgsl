// LayerNorm with bias: Y[m, :] = (X[m, :] - mean) / sqrt(var + eps) * weight + bias, var the biased variance
// (ggml_norm then mul and add, as BERT's post-norm blocks use it). One workgroup per row, or a thread per row.

struct Params {
  D: u32,
  eps: f32,
  _p0: u32,
  _p1: u32,
}
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read> X: array<f32>;          // [M, D] f32
@group(0) @binding(1) var<storage, read> weight: array<f32>;     // [D] f32
@group(0) @binding(2) var<storage, read> bias: array<f32>;       // [D] f32
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;    // [M, D] f32
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn reduce_sum(t: u32, v: f32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // red is reused by the next reduction
  return total;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let row = wid.x;
  if (row >= step.numTokens) { return; }
  let xb = row * p.D;
  var s = 0.0;
  for (var i = t; i < p.D; i += WG) { s += X[xb + i]; }
  let mean = reduce_sum(t, s) / f32(p.D);
  // Two passes (mean first, then centered squares) so large offsets do not cancel.
  var ss = 0.0;
  for (var i = t; i < p.D; i += WG) {
    let d = X[xb + i] - mean;
    ss += d * d;
  }
  let scale = 1.0 / sqrt(reduce_sum(t, ss) / f32(p.D) + p.eps);
  for (var i = t; i < p.D; i += WG) {
    Y[xb + i] = (X[xb + i] - mean) * scale * weight[i] + bias[i];
  }
}

// Barrier-free variant for CPU-backed adapters (GpuTuning.barrierFree): one thread per row.
@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x;
  if (row >= step.numTokens) { return; }
  let xb = row * p.D;
  var s = 0.0;
  for (var i = 0u; i < p.D; i++) { s += X[xb + i]; }
  let mean = s / f32(p.D);
  var ss = 0.0;
  for (var i = 0u; i < p.D; i++) {
    let d = X[xb + i] - mean;
    ss += d * d;
  }
  let scale = 1.0 / sqrt(ss / f32(p.D) + p.eps);
  for (var i = 0u; i < p.D; i++) { Y[xb + i] = (X[xb + i] - mean) * scale * weight[i] + bias[i]; }
}

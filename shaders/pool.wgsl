// Sentence pooling of one sequence's final hidden states, then L2 normalization: mean over the
// step.numTokens rows (mode 0), the first row ([CLS], mode 1) or the last row (mode 2).
// Y = v / max(||v||, 1e-12). One workgroup; each thread owns the columns t, t + 64, ...

struct Params { D: u32, mode: u32, _p0: u32, _p1: u32 }
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read> X: array<f32>;         // [M, D] f32
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;   // [D] f32
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn pooled(c: u32) -> f32 {
  let n = step.numTokens;
  if (p.mode == 1u) { return X[c]; }
  if (p.mode == 2u) { return X[(n - 1u) * p.D + c]; }
  var s = 0.0;
  for (var m = 0u; m < n; m++) { s += X[m * p.D + c]; }
  return s / f32(n);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) t: u32) {
  if (step.numTokens == 0u) { return; }
  var ss = 0.0;
  for (var c = t; c < p.D; c += WG) {
    let v = pooled(c);
    Y[c] = v;
    ss += v * v;
  }
  red[t] = ss;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { red[t] += red[t + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / max(sqrt(red[0]), 1e-12);
  // Each thread rescales only the columns it wrote itself, so no further barrier is needed.
  for (var c = t; c < p.D; c += WG) { Y[c] = Y[c] * inv; }
}

// GELU in place over [numTokens, width], the tanh form llama.cpp's ggml_gelu computes:
// 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))), with its cut-offs (0 below -10, x above 10).

struct Params { width: u32, _p0: u32, _p1: u32, _p2: u32 }
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read_write> Y: array<f32>; // [M, width] f32
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_COEF_A: f32 = 0.044715;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= step.numTokens * p.width) { return; }
  let x = Y[i];
  var y = x;
  if (x <= -10.0) {
    y = 0.0;
  } else if (x < 10.0) {
    // Inside the cut-offs |inner| < 45, where tanh is well defined on every implementation.
    y = 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)));
  }
  Y[i] = y;
}

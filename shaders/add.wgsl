// Residual add: Y[i] += A[i] over [M, D]. The matmul epilogue (flags bit 1) fuses this into the
// output projections; this standalone form serves models whose residuals cannot be fused.

struct Params { D: u32, _p0: u32, _p1: u32, _p2: u32 }
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read_write> Y: array<f32>; // [M, D] f32
@group(0) @binding(1) var<storage, read> A: array<f32>;       // [M, D] f32
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= step.numTokens * p.D) { return; }
  Y[i] = Y[i] + A[i];
}

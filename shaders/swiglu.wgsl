// SwiGLU: G[i] = silu(G[i]) * U[i] over [M, FF], in place on the gate buffer.
// Extend with other gated activations as new entry points (e.g. GeGLU).

struct Params { FF: u32, _p0: u32, _p1: u32, _p2: u32 }
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read_write> G: array<f32>; // [M, FF] f32 gate, becomes the output
@group(0) @binding(1) var<storage, read> U: array<f32>;       // [M, FF] f32 up
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= step.numTokens * p.FF) { return; }
  let g = G[i];
  G[i] = g / (1.0 + exp(-g)) * U[i];
}

// Fused form for a [gate | up] row per token (one matmul wrote both): Out[m, i] =
// silu(GU[m, i]) * GU[m, FF + i].
@group(0) @binding(4) var<storage, read> GU: array<f32>;          // [M, 2 FF] f32
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;   // [M, FF] f32

@compute @workgroup_size(64)
fn swiglu_split(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= step.numTokens * p.FF) { return; }
  let m = i / p.FF;
  let c = i % p.FF;
  let g = GU[m * 2u * p.FF + c];
  Out[i] = g / (1.0 + exp(-g)) * GU[m * 2u * p.FF + p.FF + c];
}

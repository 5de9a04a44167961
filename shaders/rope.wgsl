// Rotary position embedding, in place on [M, numHeads, headDim] rows at positions startPos + m.
// cos/sin come from a table built on the CPU in float64 (GPU sin/cos lose accuracy at large
// angles); `neox` selects pairs (i, i + ropeDim/2) instead of (2i, 2i + 1).

struct Params {
  numHeads: u32,
  headDim: u32,
  ropeDim: u32, // rotated dims per head (<= headDim); the rest pass through
  neox: u32,
}
struct Step { numTokens: u32, startPos: u32, seqLen: u32, counter: u32 }

@group(0) @binding(0) var<storage, read_write> X: array<f32>;    // [M, numHeads, headDim] f32
@group(0) @binding(1) var<storage, read> cosSin: array<vec2<f32>>; // [maxPos, ropeDim / 2] (cos, sin)
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let half = p.ropeDim / 2u;
  let idx = gid.y * nwg.x * 64u + gid.x; // one pair per invocation
  let total = step.numTokens * p.numHeads * half;
  if (idx >= total) { return; }
  let i = idx % half;
  let h = (idx / half) % p.numHeads;
  let m = idx / (half * p.numHeads);
  let pos = step.startPos + m;
  let cs = cosSin[pos * half + i];
  let base = (m * p.numHeads + h) * p.headDim;
  var a: u32;
  var b: u32;
  if (p.neox != 0u) {
    a = base + i;
    b = base + i + half;
  } else {
    a = base + 2u * i;
    b = a + 1u;
  }
  let x0 = X[a];
  let x1 = X[b];
  X[a] = x0 * cs.x - x1 * cs.y;
  X[b] = x0 * cs.y + x1 * cs.x;
}

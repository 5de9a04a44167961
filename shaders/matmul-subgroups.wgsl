// Decode matvec with one subgroup per weight row and a subgroupAdd reduction: no workgroup
// memory, no barrier. This file is appended to matmul.wgsl after `enable subgroups;` (see
// src/gpu/shader-sources.ts) on adapters that have subgroups; WGSL has no include, and the
// alternative is a second copy of every dequantizer. Add subgroup entry points here.

@compute @workgroup_size(64)
fn matvec_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) t: u32, @builtin(subgroup_size) sgs: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
  // Subgroups are contiguous runs of local_invocation_index; sgs divides 64 (it is a power of two <= 64).
  let n = (wid.y * nwg.x + wid.x) * (MV_WG / sgs) + t / sgs;
  let M = min(num_rows_m(), MV_MAX_M);
  let groups = p.K >> 3u;
  let kv4 = p.K >> 2u;
  var acc: array<f32, MV_MAX_M>;
  for (var m = 0u; m < MV_MAX_M; m++) { acc[m] = 0.0; }
  if (n < p.N) {
    let blocks = p.K >> 5u;
    for (var b = lane; b < blocks; b += sgs) {
      let w = load32(n, b);
      for (var m = 0u; m < M; m++) {
        let xb = (p.xRowOffset + m) * kv4 + 8u * b;
        for (var i = 0u; i < 8u; i++) { acc[m] += dot(w[i], X[xb + i]); }
      }
    }
    // A ragged tail of 8-element groups (float rows whose length is not a multiple of 32).
    for (var g = 4u * blocks + lane; g < groups; g += sgs) {
      let w = load8(n, g);
      for (var m = 0u; m < M; m++) {
        let xb = (p.xRowOffset + m) * kv4 + 2u * g;
        acc[m] += dot(w.a, X[xb]) + dot(w.b, X[xb + 1u]);
      }
    }
  }
  for (var m = 0u; m < MV_MAX_M; m++) {
    let s = subgroupAdd(acc[m]);
    if (lane == 0u && n < p.N && m < M) { store(m, n, s); }
  }
}

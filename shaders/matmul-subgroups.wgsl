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
  let M = min(num_rows_m(), MV_M);
  let acc = matvec_partial(n, lane, sgs, M);
  for (var m = 0u; m < MV_M; m++) {
    let s = subgroupAdd(acc[m]);
    if (lane == 0u && n < p.N && m < M) { store(m, n, s); }
  }
}

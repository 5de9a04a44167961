// The semantic cache's scan (src/cache/gpu-scan.ts): dot products of one query with the first p.n
// rows of a [capacity, dim] f32 matrix, and optionally each thread's top p.k of a slice of them.
// Variants are entry points: score_rows and score_rows4 (one thread per row, no barrier, scalar or vec4
// loads: CPU-backed adapters), score_split (8 threads per row, adjacent lanes read adjacent columns, a
// workgroup sum: GPUs).

struct Params { n: u32, dim: u32, k: u32, slice: u32 }

@group(0) @binding(0) var<storage, read> V: array<f32>;                 // [capacity, dim] f32, rows [0, n) live
@group(0) @binding(1) var<storage, read> Q: array<f32>;                 // [dim] f32
@group(0) @binding(2) var<storage, read_write> S: array<f32>;           // [n] f32
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read_write> candRow: array<u32>;     // [threads, k] u32, 0xffffffff: none
@group(0) @binding(5) var<storage, read_write> candScore: array<f32>;   // [threads, k] f32, best first

const WG: u32 = 64u;
const TPR: u32 = 8u;          // score_split: threads per row
const RPW: u32 = WG / TPR;    // score_split: rows per workgroup
const KMAX: u32 = 32u;        // top_k: largest k
const NONE: f32 = -3.4e38;

var<workgroup> part: array<f32, WG>;

// The workgroup's index in a grid split over x and y (dispatches of more than 65535 workgroups).
fn wgIndex(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }

@compute @workgroup_size(WG)
fn score_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) t: u32) {
  let row = wgIndex(wid, nwg) * WG + t;
  if (row >= p.n) { return; }
  let off = row * p.dim;
  var s = 0.0;
  for (var j = 0u; j < p.dim; j++) { s += V[off + j] * Q[j]; }
  S[row] = s;
}

// score_rows over vec4 loads, for dim % 4 == 0 (V and Q bound as vec4 views of the same buffers).
@group(0) @binding(6) var<storage, read> V4: array<vec4<f32>>;          // [capacity, dim / 4] vec4<f32>
@group(0) @binding(7) var<storage, read> Q4: array<vec4<f32>>;          // [dim / 4] vec4<f32>

@compute @workgroup_size(WG)
fn score_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
  let row = wgIndex(wid, nwg) * WG + t;
  if (row >= p.n) { return; }
  let d4 = p.dim / 4u;
  let off = row * d4;
  var s = vec4<f32>(0.0);
  for (var j = 0u; j < d4; j++) { s += V4[off + j] * Q4[j]; }
  S[row] = (s.x + s.y) + (s.z + s.w);
}

@compute @workgroup_size(WG)
fn score_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
  let lane = t % TPR;
  let row = wgIndex(wid, nwg) * RPW + t / TPR;
  var s = 0.0;
  if (row < p.n) {
    let off = row * p.dim;
    for (var j = lane; j < p.dim; j += TPR) { s += V[off + j] * Q[j]; }
  }
  part[t] = s;
  workgroupBarrier();
  if (lane == 0u && row < p.n) {
    var total = 0.0;
    for (var i = 0u; i < TPR; i++) { total += part[t + i]; }
    S[row] = total;
  }
}

// Thread t keeps the p.k best of S[t * slice, (t + 1) * slice) in a sorted private list (ties: lower
// row first) and writes it; the host merges the lists. Each of the global top k is in its slice's list.
@compute @workgroup_size(WG)
fn top_k(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  let k = min(p.k, KMAX);
  var best: array<f32, KMAX>;
  var bestRow: array<u32, KMAX>;
  for (var i = 0u; i < k; i++) { best[i] = NONE; bestRow[i] = 0xffffffffu; }
  let start = t * p.slice;
  let end = min(p.n, start + p.slice);
  for (var r = start; r < end; r++) {
    let s = S[r];
    if (s <= best[k - 1u]) { continue; }
    var i = k - 1u;
    loop {
      if (i == 0u || best[i - 1u] >= s) { break; }
      best[i] = best[i - 1u];
      bestRow[i] = bestRow[i - 1u];
      i--;
    }
    best[i] = s;
    bestRow[i] = r;
  }
  for (var i = 0u; i < k; i++) {
    candScore[t * k + i] = best[i];
    candRow[t * k + i] = bestRow[i];
  }
}

// Ceiling probes: how fast this adapter streams memory and multiplies f32 matrices when nothing
// else is in the way. The benchmark reports hearth's kernels as fractions of these numbers.
// Each variant is an entry point; add one when a better-shaped probe shows itself.

struct Params {
  n: u32,     // read_stream: vec4 elements in src; matmul: square size
  iters: u32, // unused by matmul
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;       // [n] vec4 (read_stream) or A [n, n] f32 as vec4
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;       // per-thread sums, or C [n, n]
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> srcB: array<vec4<f32>>;      // B [n, n] (matmul only)

// Grid-stride read of the whole buffer, one vec4 per thread per iteration (contiguous across a
// workgroup); each thread writes its sum so the loads cannot be removed.
@compute @workgroup_size(64)
fn read_stream(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * 64u;
  var acc = vec4<f32>(0.0);
  for (var i = gid.x; i < p.n; i += stride) { acc += src[i]; }
  dst[gid.x] = acc.x + acc.y + acc.z + acc.w;
}

// Same read, each thread owning one contiguous slice (what a CPU-backed adapter prefers).
@compute @workgroup_size(64)
fn read_slices(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let threads = nwg.x * 64u;
  let per = (p.n + threads - 1u) / threads;
  let begin = gid.x * per;
  let end = min(p.n, begin + per);
  var acc = vec4<f32>(0.0);
  for (var i = begin; i < end; i++) { acc += src[i]; }
  dst[gid.x] = acc.x + acc.y + acc.z + acc.w;
}

// C = A * B^T for square f32 matrices, each thread a 4x4 register tile, no shared memory.
@compute @workgroup_size(8, 8)
fn matmul_regs(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = p.n;
  let r0 = gid.y * 4u;
  let c0 = gid.x * 4u;
  if (r0 >= n || c0 >= n) { return; }
  let n4 = n / 4u;
  var acc: array<vec4<f32>, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
  for (var k = 0u; k < n4; k++) {
    let b0 = srcB[(c0 + 0u) * n4 + k];
    let b1 = srcB[(c0 + 1u) * n4 + k];
    let b2 = srcB[(c0 + 2u) * n4 + k];
    let b3 = srcB[(c0 + 3u) * n4 + k];
    for (var i = 0u; i < 4u; i++) {
      let a = src[(r0 + i) * n4 + k];
      acc[i] += vec4<f32>(dot(a, b0), dot(a, b1), dot(a, b2), dot(a, b3));
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let o = (r0 + i) * n + c0;
    dst[o] = acc[i].x;
    dst[o + 1u] = acc[i].y;
    dst[o + 2u] = acc[i].z;
    dst[o + 3u] = acc[i].w;
  }
}

// C = A * B^T with 64x64 tiles staged through workgroup memory (what GPUs prefer).
var<workgroup> ta: array<array<vec4<f32>, 8>, 64>;
var<workgroup> tb: array<array<vec4<f32>, 8>, 64>;

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = p.n;
  let n4 = n / 4u;
  let t = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = 0.0; } }
  for (var k4 = 0u; k4 < n4; k4 += 8u) {
    for (var h = 0u; h < 2u; h++) {
      let idx = t + 256u * h;
      let r = idx / 8u;
      let c = idx % 8u;
      ta[r][c] = src[(wid.y * 64u + r) * n4 + k4 + c];
      tb[r][c] = srcB[(wid.x * 64u + r) * n4 + k4 + c];
    }
    workgroupBarrier();
    for (var c = 0u; c < 8u; c++) {
      for (var i = 0u; i < 4u; i++) {
        let a = ta[lid.y + 16u * i][c];
        for (var j = 0u; j < 4u; j++) { acc[i][j] += dot(a, tb[lid.x + 16u * j][c]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      dst[(wid.y * 64u + lid.y + 16u * i) * n + wid.x * 64u + lid.x + 16u * j] = acc[i][j];
    }
  }
}

// Shared by sample.wgsl and spec.wgsl (src/gpu/shader-sources.ts puts it in front of both): the
// counter-based random hash and the workgroup scans over one vocabulary row. The including shader
// declares WG (threads per workgroup), `var<private> nV: u32` (the row's length) and the
// workgroup arrays rf: array<f32, WG> and ru: array<u32, WG>.

// PCG hash (O'Neill's pcg_hash); src/ref/sample.ts pcgHash is its CPU twin.
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// Thread t's contiguous segment [x, y) of the row.
fn seg_range(t: u32) -> vec2<u32> {
  let n = (nV + WG - 1u) / WG;
  return vec2<u32>(min(nV, t * n), min(nV, (t + 1u) * n));
}

struct Best {
  v: f32,
  i: u32,
}

// Workgroup argmax of each thread's (value, index): the largest value, lowest index on ties, to
// every thread (and left in rf[0], ru[0]).
fn reduce_argmax(t: u32, best: f32, bi: u32) -> Best {
  workgroupBarrier();
  rf[t] = best;
  ru[t] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      let o = t + s;
      if (rf[o] > rf[t] || (rf[o] == rf[t] && ru[o] < ru[t])) { rf[t] = rf[o]; ru[t] = ru[o]; }
    }
    workgroupBarrier();
  }
  return Best(workgroupUniformLoad(&rf[0]), workgroupUniformLoad(&ru[0]));
}

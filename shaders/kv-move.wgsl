// After speculative verification: move each verified token tree's accepted path to consecutive
// cache slots. Node i of a tree fed at root slot `start` wrote its K/V at slot start + i (see
// src/spec/tree.ts); the accepted nodes n_1, n_2, ..., n_k (depths 1..k) belong at start + 1 ..
// start + k. The path comes from the verifier's output (shaders/spec.wgsl, VERIFY_OUT_WORDS per
// sequence: [0] k, [1 ..] the path), so the move runs in the same submission, before anything is
// read back. One thread per (sequence, K/V element) walks the path in depth order: n_i >= i, so a
// destination is never a later source. One dispatch per layer.

struct Params { kvElems: u32, blockShift: u32, blocksPerSeq: u32, _p: u32 }

@group(0) @binding(0) var<storage, read_write> Kc: array<f32>;   // [numBlocks * blockSize, kvElems]
@group(0) @binding(1) var<storage, read_write> Vc: array<f32>;
@group(0) @binding(2) var<storage, read> tables: array<u32>;     // [sequence rows, blocksPerSeq]
@group(0) @binding(3) var<storage, read> verified: array<u32>;   // [sequences, VERIFY_OUT_WORDS]
@group(0) @binding(4) var<storage, read> moves: array<vec4<u32>>; // [0].x = count; [1 + s] = (verify output row, table row, root slot, 0)
@group(0) @binding(5) var<uniform> p: Params;

const VERIFY_OUT_WORDS: u32 = 32u;

fn kv_slot(seqRow: u32, pos: u32) -> u32 {
  let b = tables[seqRow * p.blocksPerSeq + (pos >> p.blockShift)];
  return (b << p.blockShift) | (pos & ((1u << p.blockShift) - 1u));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.y * nwg.x * 64u + gid.x;
  let s = idx / p.kvElems;
  let e = idx % p.kvElems;
  if (s >= moves[0].x) { return; }
  let m = moves[1u + s];
  let o = m.x * VERIFY_OUT_WORDS;
  let k = verified[o];
  for (var i = 0u; i < k; i++) {
    let src = m.z + verified[o + 1u + i];
    let dst = m.z + 1u + i;
    if (src != dst) {
      let a = kv_slot(m.y, src) * p.kvElems + e;
      let b = kv_slot(m.y, dst) * p.kvElems + e;
      Kc[b] = Kc[a];
      Vc[b] = Vc[a];
    }
  }
}

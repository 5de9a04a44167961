// Rotary position embedding, in place on [M, numHeads, headDim] rows, token m at RoPE position
// tokMeta[m].x (a step mixes tokens of several sequences, each at its own position).
// cos/sin come from a table built on the CPU in float64 (GPU sin/cos lose accuracy at large
// angles); `neox` selects pairs (i, i + ropeDim/2) instead of (2i, 2i + 1).

struct Params {
  numHeads: u32,
  headDim: u32,
  ropeDim: u32, // rotated dims per head (<= headDim); the rest pass through
  neox: u32,
}
struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 } // numOut: rows whose logits the step computes

@group(0) @binding(0) var<storage, read_write> X: array<f32>;    // [M, numHeads, headDim] f32
@group(0) @binding(1) var<storage, read> cosSin: array<vec2<f32>>; // [maxPos, ropeDim / 2] (cos, sin)
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(8) var<storage, read> tokMeta: array<vec4<u32>>; // [M] (RoPE position, sequence row, KV slot position, attention mask; see attention.wgsl)

// Indices of rotated pair i of a head starting at `base`: (2i, 2i + 1), or (i, i + half) for NeoX.
fn pair(base: u32, i: u32, half: u32, neox: bool) -> vec2<u32> {
  if (neox) { return vec2<u32>(base + i, base + i + half); }
  return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let half = p.ropeDim / 2u;
  let idx = gid.y * nwg.x * 64u + gid.x; // one pair per invocation
  let total = step.numTokens * p.numHeads * half;
  if (idx >= total) { return; }
  let i = idx % half;
  let h = (idx / half) % p.numHeads;
  let m = idx / (half * p.numHeads);
  let pos = tokMeta[m].x;
  let cs = cosSin[pos * half + i];
  let ab = pair(((m * p.numHeads + h) * p.headDim), i, half, p.neox != 0u);
  let a = ab.x;
  let b = ab.y;
  let x0 = X[a];
  let x1 = X[b];
  X[a] = x0 * cs.x - x1 * cs.y;
  X[b] = x0 * cs.y + x1 * cs.x;
}

// Fused form for a qkv row [q heads | k heads | v heads] per token (one matmul wrote it): rotates
// the q heads in place, writes the rotated k heads and the v heads into the paged KV cache at the
// token's slot z = tokMeta[m].z: block tables[seqRow * blocksPerSeq + z / blockSize], row
// z % blockSize (a token-tree node's slot differs from its RoPE position, its depth). One
// dispatch instead of two RoPEs and two copies; the cache is written once.
struct QkvParams {
  numHeads: u32,
  numKvHeads: u32,
  headDim: u32,
  ropeDim: u32,
  neox: u32,
  blockShift: u32,   // log2(block size)
  blocksPerSeq: u32, // row length of `tables`
  _p2: u32,
}
@group(0) @binding(4) var<storage, read_write> QKV: array<f32>;  // [M, (numHeads + 2 numKvHeads) * headDim] f32
@group(0) @binding(5) var<uniform> qp: QkvParams;
@group(0) @binding(6) var<storage, read_write> Kc: array<f32>;   // [numBlocks * blockSize, numKvHeads, headDim] f32
@group(0) @binding(7) var<storage, read_write> Vc: array<f32>;   // [numBlocks * blockSize, numKvHeads, headDim] f32
@group(0) @binding(9) var<storage, read> tables: array<u32>;     // [sequence rows, blocksPerSeq] block ids

// Cache row of position `pos` of the sequence in table row `seqRow`.
fn kv_slot(seqRow: u32, pos: u32) -> u32 {
  let b = tables[seqRow * qp.blocksPerSeq + (pos >> qp.blockShift)];
  return (b << qp.blockShift) | (pos & ((1u << qp.blockShift) - 1u));
}

// Rotated element d of a head whose row starts at `base`, at `pos` (d >= ropeDim passes through).
fn rotated(base: u32, d: u32, pos: u32) -> f32 {
  let half = qp.ropeDim / 2u;
  if (d >= qp.ropeDim) { return QKV[base + d]; }
  var i: u32;
  var first: bool;
  if (qp.neox != 0u) {
    i = d % half;
    first = d < half;
  } else {
    i = d / 2u;
    first = (d & 1u) == 0u;
  }
  let cs = cosSin[pos * half + i];
  let a = select(base + d - select(1u, half, qp.neox != 0u), base + d, first);
  let b = select(base + d, base + d + select(1u, half, qp.neox != 0u), first);
  let x0 = QKV[a];
  let x1 = QKV[b];
  return select(x0 * cs.y + x1 * cs.x, x0 * cs.x - x1 * cs.y, first);
}

@compute @workgroup_size(64)
fn rope_qkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let hd = qp.headDim;
  let half = qp.ropeDim / 2u;
  let qPairs = qp.numHeads * half;
  let kvElems = qp.numKvHeads * hd;
  let perToken = qPairs + 2u * kvElems;
  let idx = gid.y * nwg.x * 64u + gid.x;
  if (idx >= step.numTokens * perToken) { return; }
  let m = idx / perToken;
  let j = idx % perToken;
  let tm = tokMeta[m];
  let pos = tm.x;
  let row = m * (qp.numHeads + 2u * qp.numKvHeads) * hd;
  let cacheRow = kv_slot(tm.y, tm.z) * kvElems;
  if (j < qPairs) {
    // q: one thread per rotated pair, in place
    let h = j / half;
    let i = j % half;
    let ab = pair(row + h * hd, i, half, qp.neox != 0u);
    let a = ab.x;
    let b = ab.y;
    let cs = cosSin[pos * half + i];
    let x0 = QKV[a];
    let x1 = QKV[b];
    QKV[a] = x0 * cs.x - x1 * cs.y;
    QKV[b] = x0 * cs.y + x1 * cs.x;
  } else if (j < qPairs + kvElems) {
    // k: one thread per element, rotated into the cache (the qkv row is only read)
    let e = j - qPairs;
    let base = row + qp.numHeads * hd + (e / hd) * hd;
    Kc[cacheRow + e] = rotated(base, e % hd, pos);
  } else {
    let e = j - qPairs - kvElems;
    Vc[cacheRow + e] = QKV[row + (qp.numHeads + qp.numKvHeads) * hd + e];
  }
}

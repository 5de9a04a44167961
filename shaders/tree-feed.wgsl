// Drafting a token tree level by level without reading the drawn tokens back: before a level's
// forward pass, token i of the pass takes the token that `expand` (spec.wgsl) wrote into node
// feed[i] of the nodes buffer. One thread per token of the pass.

struct Step { numTokens: u32, numOut: u32, _s0: u32, _s1: u32 }

const NODE_WORDS: u32 = 8u; // src/spec/verify.ts NODE_WORDS; the token is word 0

@group(0) @binding(0) var<storage, read> nodes: array<u32>;       // [nodes, NODE_WORDS]
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;   // [tokens] the pass's token ids
@group(0) @binding(2) var<storage, read> feed: array<u32>;        // [tokens] global node index of each token
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= step.numTokens) { return; }
  ids[i] = nodes[feed[i] * NODE_WORDS];
}

// Speculative decoding on the GPU (vocab-scan.wgsl, put in front, gives pcg, seg_range and
// reduce_argmax): `expand` draws a tree node's children from the draft model's
// logits the way each verifier needs; `verify` walks each sequence's token tree against the target's
// logits and emits the accepted path plus one bonus token, distributed exactly as plain sampling
// from the target (lossless). A new verifier adds a method code here, in src/spec/verify.ts and in
// src/spec/verify-ref.ts (whose exact output distributions are the proof that it is lossless).

struct Seq {
  nodeBase: u32,         // global index of the tree's root in `nodes`
  numNodes: u32,
  method: u32,           // 0 greedy, 1 rrs, 2 rrs-wo (without replacement), 3 spechub
  V: u32,
  temperature: f32,      // <= 0: greedy
  draftTemperature: f32, // <= 0: greedy draft; its children are deterministic (point masses)
  seed: u32,
  counter: u32,          // index in the output of the first token this step generates
}

struct Node {
  token: u32,
  parent: u32,      // local index; NO_ROW for the root
  pRow: u32,        // row of pLogits: the target's logits after this node
  qRow: u32,        // row of qLogits the children were drawn from; NO_ROW: point-mass children
  firstChild: u32,  // local index (children are contiguous, in draw order)
  numChildren: u32,
  depth: u32,
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> pLogits: array<f32>;         // [pRows, V] f32
@group(0) @binding(1) var<storage, read> qLogits: array<f32>;         // [qRows, V] f32
@group(0) @binding(2) var<storage, read_write> nodes: array<Node>;    // [maxNodes] (expand writes children's tokens)
@group(0) @binding(3) var<storage, read> seqs: array<Seq>;            // [maxSeqs]
@group(0) @binding(4) var<storage, read> jobs: array<vec2<u32>>;      // [maxNodes] (seq, local node) to expand
@group(0) @binding(5) var<storage, read_write> out: array<u32>;       // [maxSeqs, OUT_WORDS] (layout in src/spec/verify.ts)
@group(0) @binding(6) var<storage, read> treeNodes: array<Node>;      // the same buffer as `nodes`, read-only for verify

// Threads per workgroup, a power of two: 256 for real vocabularies; the host picks fewer for tiny
// ones (no thread idles over an empty segment of the vocabulary).
override WG: u32 = 256u;
const NO_ROW: u32 = 0xffffffffu;
const MAX_NODES: u32 = 32u;
const MAX_DEPTH: u32 = 8u;
const OUT_WORDS: u32 = 32u;
const M_GREEDY: u32 = 0u;
const M_RRS: u32 = 1u;
const M_WO: u32 = 2u;
const M_HUB: u32 = 3u;
// Random streams, distinct from the sampler's and from each other: the drafts and the accept tests
// must be independent draws.
const STREAM_EXPAND: u32 = 0x5bd1e995u;
const STREAM_VERIFY: u32 = 0x27d4eb2fu;
const BONUS_DRAW: u32 = 63u;

// ---- rows, probabilities ---------------------------------------------------------------------

var<private> nV: u32;
var<private> pbase: u32;
var<private> qbase: u32;
var<private> pmx: f32;   // max target logit
var<private> pinvT: f32;
var<private> pinvZ: f32; // 1 / sum of the tempered target weights
var<private> qmx: f32;
var<private> qinvT: f32;
var<private> qinvZ: f32;

fn plog(i: u32) -> f32 { return pLogits[pbase + i]; }
fn qlog(i: u32) -> f32 { return qLogits[qbase + i]; }
fn pprob(i: u32) -> f32 { return exp((plog(i) - pmx) * pinvT) * pinvZ; }
fn qprob(i: u32) -> f32 { return exp((qlog(i) - qmx) * qinvT) * qinvZ; }

// Uniform in [0, 1) with 24 random bits for (seed, stream, counter, sub-draw) (verify-ref.ts specUniform).
fn uni(seed: u32, stream: u32, ctr: u32, sub: u32) -> f32 {
  let h = pcg(pcg(pcg(seed ^ stream) ^ ctr) ^ sub);
  return f32(h >> 8u) * (1.0 / 16777216.0);
}

// ---- workgroup reductions --------------------------------------------------------------------

var<workgroup> rf: array<f32, WG>;
var<workgroup> ru: array<u32, WG>;
var<workgroup> r4: array<vec4<f32>, WG>;
var<workgroup> seg: array<f32, WG>;
var<workgroup> shU: u32;
var<workgroup> shF: f32;
var<workgroup> shNode: vec4<u32>;


fn argmax_p(t: u32) -> Best {
  let r = seg_range(t);
  var best = -3.4e38;
  var bi = NO_ROW;
  for (var i = r.x; i < r.y; i++) {
    let v = plog(i);
    if (v > best) { best = v; bi = i; }
  }
  return reduce_argmax(t, best, bi);
}

// Draft argmax over the tokens not in taken[0 .. nexcl).
var<private> taken: array<u32, MAX_NODES>;
var<private> nexcl: u32;
fn is_taken(i: u32) -> bool {
  for (var k = 0u; k < nexcl; k++) { if (taken[k] == i) { return true; } }
  return false;
}
fn argmax_q(t: u32) -> Best {
  let r = seg_range(t);
  var best = -3.4e38;
  var bi = NO_ROW;
  for (var i = r.x; i < r.y; i++) {
    let v = qlog(i);
    if (v > best && !is_taken(i)) { best = v; bi = i; }
  }
  return reduce_argmax(t, best, bi);
}

fn sum4(t: u32, v: vec4<f32>) -> vec4<f32> {
  workgroupBarrier();
  r4[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { r4[t] += r4[t + s]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&r4[0]);
}

// Thread 0's value, to every thread, as a uniform value (control flow may depend on it).
fn bcast(t: u32, v: u32) -> u32 {
  workgroupBarrier();
  if (t == 0u) { shU = v; }
  return workgroupUniformLoad(&shU);
}

// ---- drawing from an unnormalised weight function ----------------------------------------------

const W_DRAFT: u32 = 0u; // draft weights, tokens in taken[0 .. nexcl) removed
const W_RESID: u32 = 1u; // verify's residual after rejecting children 0 .. nres-1
const W_HUB: u32 = 2u;   // SpecHub's residual
var<private> wmode: u32;

fn weight(i: u32) -> f32 {
  switch wmode {
    case W_DRAFT: { return select(exp((qlog(i) - qmx) * qinvT), 0.0, is_taken(i)); }
    case W_RESID: { return resid(i, nres); }
    default: { return hub_resid(i); }
  }
}

// The token whose cumulative weight (in index order) first exceeds u * total; NO_ROW when every
// weight is 0. Thread t owns [seg[t], seg[t] + its sum): the same f32 additions thread 0 did, so
// the segments tile [0, total) exactly and one thread owns the draw.
fn draw(t: u32, u01: f32) -> u32 {
  let r = seg_range(t);
  var ws = 0.0;
  for (var i = r.x; i < r.y; i++) { ws += weight(i); }
  workgroupBarrier();
  seg[t] = ws;
  workgroupBarrier();
  if (t == 0u) {
    var run = 0.0;
    for (var i = 0u; i < WG; i++) {
      let v = seg[i];
      seg[i] = run;
      run += v;
    }
    shF = run;
    shU = NO_ROW;
  }
  workgroupBarrier();
  let total = shF;
  var u = u01 * total;
  // u01 < 1, but the product can round up to total (probability <= 2^-24).
  if (u >= total) { u = 0.0; }
  let acc0 = seg[t];
  if (total > 0.0 && u >= acc0 && u < acc0 + ws) {
    // The running sum restarts from seg[t] and can round a hair short: then the segment's last
    // token with weight owns the draw.
    var acc = acc0;
    var last = NO_ROW;
    for (var i = r.x; i < r.y; i++) {
      let wi = weight(i);
      if (wi > 0.0) {
        acc += wi;
        last = i;
        if (u < acc) { break; }
      }
    }
    shU = last;
  }
  return workgroupUniformLoad(&shU);
}

// ---- expand ----------------------------------------------------------------------------------

// One workgroup per job (sequence, node with qRow != NO_ROW): writes the node's children's tokens.
@compute @workgroup_size(WG)
fn expand(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let job = jobs[wid.x + wid.y * nwg.x];
  let s = seqs[job.x];
  let g = s.nodeBase + job.y;
  // `nodes` is writable, so its words are not uniform to the compiler: pass them through thread 0.
  // Only the fields expand never writes are read (other jobs write children's tokens meanwhile).
  if (t == 0u) { shNode = vec4<u32>(nodes[g].qRow, nodes[g].firstChild, nodes[g].numChildren, 0u); }
  let nd = workgroupUniformLoad(&shNode);
  let w = min(nd.z, MAX_NODES);
  if (nd.x == NO_ROW || w == 0u) { return; }
  nV = s.V;
  qbase = nd.x * s.V;
  nexcl = 0u;
  let top = argmax_q(t);
  let hub = top.i;
  qmx = top.v;
  qinvT = 1.0 / s.draftTemperature;
  wmode = W_DRAFT;
  let greedy = s.method == M_GREEDY || s.temperature <= 0.0 || s.draftTemperature <= 0.0;
  var method = s.method;
  if (method == M_HUB && w != 2u) { method = M_WO; }
  let child0 = s.nodeBase + nd.y;
  var x1 = NO_ROW;
  for (var j = 0u; j < w; j++) {
    let u = uni(s.seed, STREAM_EXPAND, s.counter, job.y * 64u + j);
    var x = NO_ROW;
    if (greedy) {
      // the w best draft tokens, distinct, best first
      nexcl = j;
      x = argmax_q(t).i;
    } else if (method == M_RRS) {
      nexcl = 0u;
      x = draw(t, u);
    } else if (method == M_WO) {
      nexcl = j;
      x = draw(t, u);
    } else {
      // SpecHub: x1 ~ q; if x1 is the hub, x2 ~ q without the hub, else x2 is the hub.
      if (j == 0u) {
        nexcl = 0u;
        x = draw(t, u);
      } else if (x1 == hub) {
        nexcl = 1u;
        x = draw(t, u);
        // q without the hub has no mass (f32 underflow): any other token; verify gives it no chance.
        if (x == NO_ROW) { x = select(0u, 1u, hub == 0u); }
      } else {
        x = hub;
      }
    }
    // No token left (V < w, or every weight 0): repeat the hub; verify never accepts a
    // zero-probability proposal, so this costs acceptance only.
    if (x == NO_ROW) { x = hub; }
    if (j == 0u) { x1 = x; }
    taken[j] = x;
    if (t == 0u) { nodes[child0 + j].token = x; }
  }
}

// ---- verify ----------------------------------------------------------------------------------

// Residual kinds of the recursive rejection loop: child j's proposal q_j is
const R_POINT: u32 = 0u; // a point mass on x_j (deterministic drafts)
const R_RRS: u32 = 1u;   // q itself (i.i.d. drafts)
const R_WO: u32 = 2u;    // q without x_0 .. x_{j-1}, renormalised
var<private> rmode: u32;
var<private> xs: array<u32, MAX_NODES>;     // the children's tokens
var<private> invZ: array<f32, MAX_NODES>;   // 1 / sum(max(0, r_j - q_j)) once child j is rejected
var<private> remInv: array<f32, MAX_NODES>; // R_WO: 1 / the draft mass left without x_0 .. x_{j-1}
var<private> nres: u32;                     // children rejected so far

fn proposal(i: u32, j: u32, qi: f32, gone: bool) -> f32 {
  if (rmode == R_POINT) { return select(0.0, 1.0, i == xs[j]); }
  if (rmode == R_RRS) { return qi; }
  return select(qi * remInv[j], 0.0, gone);
}

// r_J(i): p, then for each rejected child j: normalise(max(0, r - q_j)).
fn resid(i: u32, J: u32) -> f32 {
  var r = pprob(i);
  var qi = 0.0;
  if (rmode != R_POINT) { qi = qprob(i); }
  var gone = false;
  for (var j = 0u; j < J; j++) {
    r = max(0.0, r - proposal(i, j, qi, gone)) * invZ[j];
    if (xs[j] == i) { gone = true; }
  }
  return r;
}

// SpecHub: s(i) = q(i) / (1 - q(a)) is the chance that i != a is in the pair; hubR is the draft mass
// left when no non-hub token was accepted.
var<private> hubA: u32;
var<private> hubInvOm: f32;
var<private> hubR: f32;
fn hub_resid(i: u32) -> f32 {
  if (i == hubA) { return max(0.0, pprob(i) - hubR); }
  return max(0.0, pprob(i) - qprob(i) * hubInvOm);
}

// One workgroup per sequence. Output layout: src/spec/verify.ts (VERIFY_OUT_WORDS).
@compute @workgroup_size(WG)
fn verify(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let sid = wid.x + wid.y * nwg.x;
  let s = seqs[sid];
  let ob = sid * OUT_WORDS;
  // Thread 0 writes every output word (clearing first), so no two threads write the same word.
  if (t == 0u) { for (var i = 0u; i < OUT_WORDS; i++) { out[ob + i] = 0u; } }
  nV = s.V;
  let greedy = s.method == M_GREEDY || s.temperature <= 0.0;
  var c = 0u;     // current node (local)
  var k = 0u;     // accepted draft tokens so far (= depth of c)
  loop {
    let nd = treeNodes[s.nodeBase + c];
    pbase = nd.pRow * s.V;
    let top = argmax_p(t);
    pmx = top.v;
    var w = min(nd.numChildren, MAX_NODES);
    if (k >= MAX_DEPTH) { w = 0u; }
    let first = s.nodeBase + nd.firstChild;
    for (var j = 0u; j < w; j++) { xs[j] = treeNodes[first + j].token; }
    let ctr = s.counter + k;
    // sums: x = untempered partition function (logprobs), y = tempered (p)
    let rr = seg_range(t);
    var z = vec4<f32>();
    pinvT = select(1.0, 1.0 / s.temperature, !greedy);
    for (var i = rr.x; i < rr.y; i++) {
      let l = plog(i) - pmx;
      z += vec4<f32>(exp(l), exp(l * pinvT), 0.0, 0.0);
    }
    let zs = sum4(t, z);
    let lse = pmx + log(zs.x);
    pinvZ = 1.0 / zs.y;

    var acceptJ = NO_ROW; // index of the accepted child (0 .. w-1)
    var bonus = NO_ROW;
    if (greedy) {
      for (var j = 0u; j < w; j++) {
        if (treeNodes[first + j].token == top.i) { acceptJ = j; break; }
      }
      if (acceptJ == NO_ROW) { bonus = top.i; }
    } else {
      let point = nd.qRow == NO_ROW || s.draftTemperature <= 0.0;
      var hub = NO_ROW;
      if (!point) {
        qbase = nd.qRow * s.V;
        nexcl = 0u;
        let qt = argmax_q(t);
        qmx = qt.v;
        hub = qt.i;
        qinvT = 1.0 / s.draftTemperature;
        qinvZ = 1.0;
        var zq = 0.0;
        for (var i = rr.x; i < rr.y; i++) { zq += qprob(i); }
        qinvZ = 1.0 / sum4(t, vec4<f32>(zq, 0.0, 0.0, 0.0)).x;
      }
      // SpecHub applies to a pair that contains the hub exactly once; anything else (w != 2, a
      // hand-written tree) falls back to RRS without replacement, like expand.
      var hubCase = 0u; // 1: pair (i, a); 2: pair (a, i)
      if (!point && s.method == M_HUB && w == 2u) {
        let t0 = treeNodes[first].token;
        let t1 = treeNodes[first + 1u].token;
        if (t1 == hub && t0 != hub) { hubCase = 1u; }
        if (t0 == hub && t1 != hub) { hubCase = 2u; }
      }
      if (hubCase != 0u) {
        // Every draft mass of the pair goes to i first, then to the hub a:
        //   i gets min(p(i), s(i)) (min(p, q) on the (i, a) branch, the rest on the (a, i) branch),
        //   a gets min(p(a), R) with R = 1 - sum_{i != a} min(p(i), s(i)) = sum_{i != a} max(0, s(i) - p(i))
        //   (sum_{i != a} s(i) = 1), spread evenly over whatever pair is left,
        //   and the rejected mass equals the residual's: the output is exactly p. papers.md's
        //   SpecHub spends the hub's acceptance branch by branch in a set order; its total is the same
        //   min(p(a), R) (p(a) <= R always holds), so the acceptance rates are equal.
        hubA = hub;
        let iTok = select(xs[0], xs[1], hubCase == 2u);
        var om = 0.0;
        for (var i = rr.x; i < rr.y; i++) { if (i != hub) { om += qprob(i); } }
        let omS = sum4(t, vec4<f32>(om, 0.0, 0.0, 0.0)).x;
        hubInvOm = select(0.0, 1.0 / omS, omS > 0.0);
        var rs = 0.0;
        for (var i = rr.x; i < rr.y; i++) { if (i != hub) { rs += max(0.0, qprob(i) * hubInvOm - pprob(i)); } }
        let rsum = sum4(t, vec4<f32>(rs, 0.0, 0.0, 0.0)).x;
        // q without the hub has no mass: no non-hub draft ever, all draft mass is left for the hub.
        hubR = select(1.0, rsum, omS > 0.0);
        var dec = 0u; // 1 accept i, 2 accept a, 0 bonus
        if (t == 0u) {
          let pi = pprob(iTok);
          let qi = qprob(iTok);
          var a = 0.0;
          if (hubCase == 1u) {
            a = select(0.0, pi / qi, qi > 0.0);
          } else {
            let den = qprob(hub) * qi * hubInvOm;
            a = select(0.0, max(0.0, pi - qi) / den, den > 0.0);
          }
          if (uni(s.seed, STREAM_VERIFY, ctr, 0u) < a) {
            dec = 1u;
          } else if (hubR > 0.0 && uni(s.seed, STREAM_VERIFY, ctr, 1u) < pprob(hub) / hubR) {
            dec = 2u;
          }
        }
        dec = bcast(t, dec);
        if (dec == 1u) {
          acceptJ = select(0u, 1u, hubCase == 2u);
        } else if (dec == 2u) {
          acceptJ = select(1u, 0u, hubCase == 2u);
        } else {
          wmode = W_HUB;
          bonus = draw(t, uni(s.seed, STREAM_VERIFY, ctr, BONUS_DRAW));
        }
      } else {
        if (point) {
          rmode = R_POINT;
        } else if (s.method == M_RRS) {
          rmode = R_RRS;
        } else {
          rmode = R_WO;
        }
        remInv[0] = 1.0;
        for (var j = 0u; j < w; j++) {
          // accept x_j with probability min(1, r(x_j) / q_j(x_j)); a proposal with no mass is skipped
          var acc = 0u;
          if (t == 0u) {
            let x = xs[j];
            var gone = false;
            for (var k2 = 0u; k2 < j; k2++) { if (xs[k2] == x) { gone = true; } }
            var qi = 0.0;
            if (rmode != R_POINT) { qi = qprob(x); }
            let qj = proposal(x, j, qi, gone);
            if (qj > 0.0 && uni(s.seed, STREAM_VERIFY, ctr, j) < resid(x, j) / qj) { acc = 1u; }
          }
          acc = bcast(t, acc);
          if (acc == 1u) {
            acceptJ = j;
            break;
          }
          // rejected: r <- normalise(max(0, r - q_j)); R_WO also removes x_j from q
          invZ[j] = 1.0;
          var zr = vec4<f32>();
          for (var i = rr.x; i < rr.y; i++) {
            zr.x += resid(i, j + 1u);
            if (rmode == R_WO) {
              var kept = true;
              for (var k2 = 0u; k2 <= j; k2++) { if (xs[k2] == i) { kept = false; } }
              if (kept) { zr.y += qprob(i); }
            }
          }
          let zz = sum4(t, zr);
          // Z = 0 means r == q_j, where a rejection has probability 0 (rounding only): the draw
          // below then finds no mass and falls back to the target's argmax.
          invZ[j] = select(0.0, 1.0 / zz.x, zz.x > 0.0);
          if (j + 1u < MAX_NODES) { remInv[j + 1u] = select(0.0, 1.0 / zz.y, zz.y > 0.0); }
        }
        if (acceptJ == NO_ROW) {
          wmode = W_RESID;
          nres = w;
          bonus = draw(t, uni(s.seed, STREAM_VERIFY, ctr, BONUS_DRAW));
          if (bonus == NO_ROW) { bonus = top.i; }
        }
      }
      if (bonus == NO_ROW && acceptJ == NO_ROW) { bonus = top.i; }
    }

    if (acceptJ != NO_ROW) {
      let child = nd.firstChild + acceptJ;
      if (t == 0u) {
        let tok = treeNodes[s.nodeBase + child].token;
        out[ob + 1u + k] = child;
        out[ob + 1u + MAX_DEPTH + 2u * k] = tok;
        out[ob + 2u + MAX_DEPTH + 2u * k] = bitcast<u32>(plog(tok) - lse);
      }
      c = child;
      k += 1u;
    } else {
      if (t == 0u) {
        out[ob] = k;
        out[ob + 1u + MAX_DEPTH + 2u * k] = bonus;
        out[ob + 2u + MAX_DEPTH + 2u * k] = bitcast<u32>(plog(bonus) - lse);
      }
      break;
    }
  }
}

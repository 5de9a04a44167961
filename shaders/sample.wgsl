// Token sampling on the GPU, so a decode step reads back a token id, not a vocabulary of logits.
// Greedy, or temperature + top-k + top-p with a seeded counter-based RNG; top-k / top-p
// thresholds are found by bisection on the order-preserving bit pattern of the scaled logits,
// which is exact in 32 rounds. `top_logprobs` writes the K best log-probabilities.

struct Params {
  V: u32,
  temperature: f32, // <= 0: greedy
  topK: u32,        // 0: off
  topP: f32,        // >= 1: off
  seed: u32,
  numLogprobs: u32, // top_logprobs: how many (<= 32)
  _p0: u32,
  _p1: u32,
}
struct Step { numTokens: u32, startPos: u32, seqLen: u32, counter: u32 }

@group(0) @binding(0) var<storage, read> logits: array<f32>;     // [V] f32
@group(0) @binding(1) var<storage, read_write> out: array<u32>;  // [0] token, [1] its logprob (f32 bits), [2 + 2i] top id, [3 + 2i] top logprob
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

const WG: u32 = 256u;
var<workgroup> rf: array<f32, WG>;
var<workgroup> ru: array<u32, WG>;
var<workgroup> seg: array<f32, WG>;
var<workgroup> pick: u32;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// Order-preserving map from f32 to u32.
fn okey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn seg_range(t: u32) -> vec2<u32> {
  let n = (p.V + WG - 1u) / WG;
  return vec2<u32>(min(p.V, t * n), min(p.V, (t + 1u) * n));
}

// Max logit and its lowest index: ru[0], rf[0] after return.
fn argmax_all(t: u32) {
  let r = seg_range(t);
  var best = -3.4e38;
  var bi = 0xffffffffu;
  for (var i = r.x; i < r.y; i++) {
    let v = logits[i];
    if (v > best) { best = v; bi = i; }
  }
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
}

fn sum_f(t: u32, v: f32) -> f32 {
  workgroupBarrier();
  rf[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { rf[t] += rf[t + s]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&rf[0]);
}

fn sum_u(t: u32, v: u32) -> u32 {
  workgroupBarrier();
  ru[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) { ru[t] += ru[t + s]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&ru[0]);
}

fn log_sum_exp(t: u32, mx: f32) -> f32 {
  let r = seg_range(t);
  var s = 0.0;
  for (var i = r.x; i < r.y; i++) { s += exp(logits[i] - mx); }
  return mx + log(sum_f(t, s));
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) t: u32) {
  argmax_all(t);
  let mx = workgroupUniformLoad(&rf[0]);
  let amax = workgroupUniformLoad(&ru[0]);
  let lse = log_sum_exp(t, mx);
  if (p.temperature <= 0.0) {
    if (t == 0u) {
      out[0] = amax;
      out[1] = bitcast<u32>(logits[amax] - lse);
    }
    return;
  }
  let invT = 1.0 / p.temperature;
  let r = seg_range(t);

  // top-k: the largest key K with count(key >= K) >= topK
  var kmin = 0u;
  if (p.topK > 0u && p.topK < p.V) {
    var lo = 0u;
    var hi = 0xffffffffu;
    for (var it = 0u; it < 32u; it++) {
      let mid = lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u);
      var c = 0u;
      for (var i = r.x; i < r.y; i++) { c += select(0u, 1u, okey(logits[i]) >= mid); }
      if (sum_u(t, c) >= p.topK) { lo = mid; } else { hi = mid - 1u; }
    }
    kmin = lo;
  }

  // top-p over the survivors: the largest key K2 >= kmin whose upper set holds >= topP of the mass
  var wkept = 0.0;
  for (var i = r.x; i < r.y; i++) {
    let l = logits[i];
    if (okey(l) >= kmin) { wkept += exp((l - mx) * invT); }
  }
  let zKept = sum_f(t, wkept);
  var pmin = kmin;
  if (p.topP < 1.0) {
    var lo = kmin;
    var hi = okey(mx);
    for (var it = 0u; it < 32u; it++) {
      if (lo >= hi) { break; }
      let mid = lo + ((hi - lo) >> 1u) + ((hi - lo) & 1u);
      var s = 0.0;
      for (var i = r.x; i < r.y; i++) {
        let l = logits[i];
        if (okey(l) >= mid) { s += exp((l - mx) * invT); }
      }
      if (sum_f(t, s) >= p.topP * zKept) { lo = mid; } else { hi = mid - 1u; }
    }
    pmin = lo;
  }

  // sample in index order from the final set
  var ws = 0.0;
  for (var i = r.x; i < r.y; i++) {
    let l = logits[i];
    if (okey(l) >= pmin) { ws += exp((l - mx) * invT); }
  }
  seg[t] = ws;
  if (t == 0u) { pick = amax; }
  workgroupBarrier();
  if (t == 0u) {
    var run = 0.0;
    for (var i = 0u; i < WG; i++) {
      let v = seg[i];
      seg[i] = run;
      run += v;
    }
    rf[0] = run;
  }
  workgroupBarrier();
  let total = rf[0];
  let u = f32(pcg(p.seed ^ pcg(step.counter + 0x9e3779b9u)) >> 8u) * (1.0 / 16777216.0) * total;
  var acc = seg[t];
  if (u >= acc && u < acc + ws) {
    for (var i = r.x; i < r.y; i++) {
      let l = logits[i];
      if (okey(l) >= pmin) {
        acc += exp((l - mx) * invT);
        if (u < acc) { pick = i; break; }
      }
    }
  }
  workgroupBarrier();
  if (t == 0u) {
    out[0] = pick;
    out[1] = bitcast<u32>(logits[pick] - lse);
  }
}

// The numLogprobs most likely tokens of the untempered distribution, best first.
var<workgroup> taken: array<u32, 32>;

@compute @workgroup_size(WG)
fn top_logprobs(@builtin(local_invocation_index) t: u32) {
  argmax_all(t);
  let mx = workgroupUniformLoad(&rf[0]);
  let lse = log_sum_exp(t, mx);
  let r = seg_range(t);
  let k = min(p.numLogprobs, 32u);
  for (var j = 0u; j < k; j++) {
    var best = -3.4e38;
    var bi = 0xffffffffu;
    for (var i = r.x; i < r.y; i++) {
      var used = false;
      for (var q = 0u; q < j; q++) { if (taken[q] == i) { used = true; } }
      let v = logits[i];
      if (!used && v > best) { best = v; bi = i; }
    }
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
    if (t == 0u) {
      taken[j] = ru[0];
      out[2u + 2u * j] = ru[0];
      out[3u + 2u * j] = bitcast<u32>(rf[0] - lse);
    }
    workgroupBarrier();
  }
}

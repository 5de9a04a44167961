// Token sampling on the GPU, so a decode step reads back token ids, not a vocabulary of logits
// (vocab-scan.wgsl, put in front, gives pcg, seg_range and reduce_argmax).
// One workgroup per output row (a sequence of the batch), each with its own settings.
// Greedy, or temperature + top-k + top-p with a seeded counter-based RNG; top-k / top-p
// thresholds are found by a radix select on the order-preserving bit pattern of the logits (exact
// in 8 rounds of 4 bits). `top_logprobs` writes the K best log-probabilities.

struct Params {
  V: u32,
  temperature: f32, // <= 0: greedy
  topK: u32,        // 0: off
  topP: f32,        // >= 1: off
  seed: u32,
  numLogprobs: u32, // top_logprobs: how many (<= 32)
  counter: u32,     // position in the seeded random stream (the token's index in the output)
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;     // [rows, V] f32
@group(0) @binding(1) var<storage, read_write> out: array<u32>;  // [rows, OUT_WORDS]: token, its logprob (f32 bits), then (top id, top logprob) pairs
@group(0) @binding(2) var<storage, read> params: array<Params>;  // [rows]

const OUT_WORDS: u32 = 66u; // 2 + 2 * 32 (kernels/sample.ts SAMPLE_OUT_WORDS)
// This workgroup's row: where its logits and its output start, and the vocabulary size. They only
// address memory; everything that steers control flow comes from `params[row]` (uniform).
var<private> lbase: u32;
var<private> obase: u32;
var<private> nV: u32;
fn logit(i: u32) -> f32 { return logits[lbase + i]; }
fn begin_row(row: u32) -> Params {
  let q = params[row];
  lbase = row * q.V;
  obase = row * OUT_WORDS;
  nV = q.V;
  return q;
}

// Threads per row, a power of two: 256 on GPUs, 128 or fewer where workgroup barriers are dear
// (CPU-backed adapters take 4, one SIMD group of SwiftShader's, where a barrier switches fibers
// once per 4 threads).
override WG: u32 = 256u;
var<workgroup> rf: array<f32, WG>;
var<workgroup> ru: array<u32, WG>;
var<workgroup> seg: array<f32, WG>;
var<workgroup> pick: u32;

// Order-preserving map from f32 to u32. -0 maps to +0's key: they compare equal as logits, so a
// top-k / top-p threshold at zero must keep both.
fn okey(x: f32) -> u32 {
  let b = select(bitcast<u32>(x), 0u, x == 0.0);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Max logit and its lowest index: ru[0], rf[0] after return.
fn argmax_all(t: u32) {
  let r = seg_range(t);
  var best = -3.4e38;
  var bi = 0xffffffffu;
  for (var i = r.x; i < r.y; i++) {
    let v = logit(i);
    if (v > best) { best = v; bi = i; }
  }
  _ = reduce_argmax(t, best, bi);
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

fn log_sum_exp(t: u32, mx: f32) -> f32 {
  let r = seg_range(t);
  var s = 0.0;
  for (var i = r.x; i < r.y; i++) { s += exp(logit(i) - mx); }
  return mx + log(sum_f(t, s));
}

// Radix select, 4 bits a round from the top: the largest key K (among keys >= floorKey) such that the
// keys >= K weigh at least `goal`, where a key weighs 1 (useMass false: a count) or its tempered
// probability mass exp((l - mx) * invT). Eight rounds of a 16-bin histogram replace a 32-step
// bisection: each round costs a handful of barriers instead of a full tree reduction per step.
// Counts are exact in f32 up to 2^24 tokens.
var<workgroup> rbin: array<f32, 16 * 128>; // [16 bins, 128 partial sums]
var<workgroup> sel: vec2<u32>;             // (prefix so far, f32 bits of the weight above it)

fn radix_threshold(t: u32, floorKey: u32, useMass: bool, invT: f32, mx: f32, goal: f32) -> u32 {
  let r = seg_range(t);
  var prefix = 0u;
  var above = 0.0; // weight of the keys above the current prefix's range
  for (var round = 0u; round < 8u; round++) {
    let shift = 28u - 4u * round;
    let hiMask = select(0xffffffffu << ((shift + 4u) & 31u), 0u, round == 0u);
    // Explicit initializer: Dawn + SwiftShader do not re-zero `var pm: T;` on each loop iteration.
    var pm = array<f32, 16>();
    for (var i = r.x; i < r.y; i++) {
      let l = logit(i);
      let k = okey(l);
      if (k >= floorKey && (k & hiMask) == prefix) {
        pm[(k >> shift) & 15u] += select(1.0, exp((l - mx) * invT), useMass);
      }
    }
    workgroupBarrier();
    if (WG >= 256u) {
      // 256 threads x 16 bins -> 16 bins x 128 -> 16 bins x 16 (in rf) -> thread 0
      if (t < 128u) {
        for (var b = 0u; b < 16u; b++) { rbin[b * 128u + t] = pm[b]; }
      }
      workgroupBarrier();
      if (t >= 128u) {
        for (var b = 0u; b < 16u; b++) { rbin[b * 128u + t - 128u] += pm[b]; }
      }
      workgroupBarrier();
      let b = t >> 4u;
      let lane = t & 15u;
      var s = 0.0;
      for (var i = 0u; i < 8u; i++) { s += rbin[b * 128u + lane + 16u * i]; }
      rf[t] = s;
    } else {
      // WG <= 128 threads x 16 bins, summed by thread 0
      for (var b = 0u; b < 16u; b++) { rbin[b * WG + t] = pm[b]; }
    }
    workgroupBarrier();
    if (t == 0u) {
      // Highest digit d with above + weight(digits >= d) >= goal. If rounding leaves the whole
      // range short of the goal, digit 0 keeps everything (as if the filter were off).
      var acc = above;
      var d = 0u;
      var newAbove = above;
      for (var dd = 16u; dd > 0u; dd--) {
        var bm = 0.0;
        if (WG >= 256u) {
          for (var lane = 0u; lane < 16u; lane++) { bm += rf[(dd - 1u) * 16u + lane]; }
        } else {
          for (var j = 0u; j < WG; j++) { bm += rbin[(dd - 1u) * WG + j]; }
        }
        d = dd - 1u;
        newAbove = acc;
        if (acc + bm >= goal) { break; }
        acc += bm;
      }
      sel = vec2<u32>(prefix | (d << shift), bitcast<u32>(newAbove));
    }
    let s = workgroupUniformLoad(&sel);
    prefix = s.x;
    above = bitcast<f32>(s.y);
  }
  return prefix;
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let p = begin_row(wid.x);
  argmax_all(t);
  let mx = workgroupUniformLoad(&rf[0]);
  let amax = workgroupUniformLoad(&ru[0]);
  let lse = log_sum_exp(t, mx);
  if (p.temperature <= 0.0) {
    if (t == 0u) {
      out[obase] = amax;
      out[obase + 1u] = bitcast<u32>(logit(amax) - lse);
    }
    return;
  }
  let invT = 1.0 / p.temperature;
  let r = seg_range(t);

  // top-k: the largest key with at least topK keys >= it (the k-th largest logit; ties survive)
  var kmin = 0u;
  if (p.topK > 0u && p.topK < p.V) {
    kmin = radix_threshold(t, 0u, false, invT, mx, f32(p.topK));
  }

  // top-p over the survivors: the largest key K2 >= kmin whose upper set holds >= topP of the mass
  var wkept = 0.0;
  for (var i = r.x; i < r.y; i++) {
    let l = logit(i);
    if (okey(l) >= kmin) { wkept += exp((l - mx) * invT); }
  }
  let zKept = sum_f(t, wkept);
  var pmin = kmin;
  if (p.topP < 1.0) {
    pmin = max(kmin, radix_threshold(t, kmin, true, invT, mx, p.topP * zKept));
  }

  // sample in index order from the final set
  var ws = 0.0;
  for (var i = r.x; i < r.y; i++) {
    let l = logit(i);
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
  let u = f32(pcg(p.seed ^ pcg(p.counter + 0x9e3779b9u)) >> 8u) * (1.0 / 16777216.0) * total;
  var acc = seg[t];
  if (u >= acc && u < acc + ws) {
    // This thread's running sum restarts from seg[t], so it can round a hair below acc + ws: then the
    // draw belongs to the segment's last kept token, not to the argmax fallback.
    var last = amax;
    for (var i = r.x; i < r.y; i++) {
      let l = logit(i);
      if (okey(l) >= pmin) {
        acc += exp((l - mx) * invT);
        last = i;
        if (u < acc) { break; }
      }
    }
    pick = last;
  }
  workgroupBarrier();
  if (t == 0u) {
    out[obase] = pick;
    out[obase + 1u] = bitcast<u32>(logit(pick) - lse);
  }
}

// The numLogprobs most likely tokens of the untempered distribution, best first.
var<workgroup> taken: array<u32, 32>;

@compute @workgroup_size(WG)
fn top_logprobs(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let p = begin_row(wid.x);
  // Rows of the step that asked for none skip the two scans over the vocabulary.
  if (p.numLogprobs == 0u) { return; }
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
      let v = logit(i);
      if (!used && v > best) { best = v; bi = i; }
    }
    _ = reduce_argmax(t, best, bi);
    if (t == 0u) {
      taken[j] = ru[0];
      out[obase + 2u + 2u * j] = ru[0];
      out[obase + 3u + 2u * j] = bitcast<u32>(rf[0] - lse);
    }
    workgroupBarrier();
  }
}

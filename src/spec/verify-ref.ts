// CPU reference (float64) of shaders/spec.wgsl's expand and verify, plus the exact output distributions
// that prove each verifier lossless. A new verifier adds a case to verifyChain() and draftTuples().

import { argmaxRef, logSoftmaxRef, pcgHash } from '../ref/sample.js';
import { MAX_TREE_DEPTH, NO_ROW, treeLayout, type TreeSeqSpec, type VerifyMethod, type VerifyResult } from './verify.js';

/** The shader's random streams (spec.wgsl STREAM_EXPAND / STREAM_VERIFY) and the bonus draw's sub-index. */
export const STREAM_EXPAND = 0x5bd1e995;
export const STREAM_VERIFY = 0x27d4eb2f;
export const BONUS_DRAW = 63;

/** The shader's uniform in [0, 1) for (seed, stream, counter, sub-draw): 24 random bits. */
export function specUniform(seed: number, stream: number, ctr: number, sub: number): number {
  const h = pcgHash((pcgHash((pcgHash((seed ^ stream) >>> 0) ^ ctr) >>> 0) ^ sub) >>> 0);
  return (h >>> 8) / 16777216;
}

/** softmax(logits / T); T <= 0: a point mass on the argmax (highest logit, lowest index). */
export function softmaxT(logits: ArrayLike<number>, T: number): Float64Array {
  const out = new Float64Array(logits.length);
  const am = argmaxRef(logits);
  if (T <= 0) {
    out[am] = 1;
    return out;
  }
  const mx = logits[am]!;
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += out[i] = Math.exp((logits[i]! - mx) / T);
  for (let i = 0; i < logits.length; i++) out[i]! /= z;
  return out;
}

/** Index of the largest value, lowest index on ties. */
export function argmaxOf(v: ArrayLike<number>): number {
  return argmaxRef(v);
}

/** The first index whose cumulative weight exceeds u * total (index order); -1 if all weights are 0. */
export function drawIndex(weights: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i]!;
  if (!(total > 0)) return -1;
  const target = u * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i]! > 0) {
      acc += weights[i]!;
      last = i;
      if (target < acc) return i;
    }
  }
  return last;
}

/** The children's proposals as verify sees them: a draft distribution q (with the method), or deterministic tokens. */
export type Drafts = { kind: 'sampled'; q: Float64Array; w: number } | { kind: 'point'; tokens: number[] };

/**
 * The draft tuples `expand` produces for a node and their probabilities (V^w tuples at most; small V only).
 * greedy: the w best tokens; rrs: i.i.d.; rrs-wo: without replacement; spechub (w = 2): (i, a) w.p. q(i),
 * (a, i) w.p. q(a) q(i) / (1 - q(a)), a = argmax q.
 */
export function draftTuples(d: Drafts, method: VerifyMethod): { tokens: number[]; prob: number }[] {
  if (d.kind === 'point') return [{ tokens: d.tokens, prob: 1 }];
  const { q, w } = d;
  const V = q.length;
  if (method === 'greedy') {
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => q[b]! - q[a]! || a - b);
    return [{ tokens: order.slice(0, w), prob: 1 }];
  }
  if (method === 'spechub' && w === 2) {
    const a = argmaxOf(q);
    let om = 0;
    for (let i = 0; i < V; i++) if (i !== a) om += q[i]!;
    // q without the hub has no mass: expand pairs the hub with the lowest other index.
    if (!(om > 0)) return [{ tokens: [a, a === 0 ? 1 : 0], prob: 1 }];
    const out: { tokens: number[]; prob: number }[] = [];
    for (let i = 0; i < V; i++) {
      if (i === a) continue;
      out.push({ tokens: [i, a], prob: q[i]! });
      out.push({ tokens: [a, i], prob: (q[a]! * q[i]!) / om });
    }
    return out.filter((t) => t.prob > 0);
  }
  const wo = method !== 'rrs';
  const out: { tokens: number[]; prob: number }[] = [];
  const rec = (prefix: number[], prob: number, left: number): void => {
    if (prefix.length === w) {
      out.push({ tokens: prefix, prob });
      return;
    }
    for (let x = 0; x < V; x++) {
      if (wo && prefix.includes(x)) continue;
      const px = q[x]! / left;
      if (px > 0) rec([...prefix, x], prob * px, wo ? left - q[x]! : left);
    }
  };
  rec([], 1, 1);
  return out;
}

/**
 * Verification at one node as a chain: tests in order (accept child `child` if u(sub) < prob), then
 * the bonus from `residual` (unnormalised; all zero = the target's argmax). Mirrors spec.wgsl verify.
 */
export interface Chain {
  tests: { child: number; prob: number; sub: number }[];
  residual: Float64Array;
}

/** `p`: target distribution at the node; `q`: draft distribution (null: point-mass children); `xs`: the children's tokens. */
export function verifyChain(p: Float64Array, q: Float64Array | null, xs: readonly number[], method: VerifyMethod, greedy: boolean): Chain {
  const V = p.length;
  const w = xs.length;
  if (greedy) {
    const y = argmaxOf(p);
    const j = xs.indexOf(y);
    const residual = new Float64Array(V);
    residual[y] = 1;
    return { tests: j >= 0 ? [{ child: j, prob: 1, sub: 0 }] : [], residual };
  }
  if (q && method === 'spechub' && w === 2) {
    const a = argmaxOf(q);
    const hubCase = xs[1] === a && xs[0] !== a ? 1 : xs[0] === a && xs[1] !== a ? 2 : 0;
    if (hubCase !== 0) {
      const iTok = hubCase === 1 ? xs[0]! : xs[1]!;
      let om = 0;
      for (let i = 0; i < V; i++) if (i !== a) om += q[i]!;
      const invOm = om > 0 ? 1 / om : 0;
      let R = 1;
      if (om > 0) {
        R = 0;
        for (let i = 0; i < V; i++) if (i !== a) R += Math.max(0, q[i]! * invOm - p[i]!);
      }
      const pi = p[iTok]!;
      const qi = q[iTok]!;
      let alpha: number;
      if (hubCase === 1) alpha = qi > 0 ? pi / qi : 0;
      else {
        const den = q[a]! * qi * invOm;
        alpha = den > 0 ? Math.max(0, pi - qi) / den : 0;
      }
      const beta = R > 0 ? p[a]! / R : 0;
      const residual = Float64Array.from(p, (pv, i) => (i === a ? Math.max(0, pv - R) : Math.max(0, pv - q[i]! * invOm)));
      return {
        tests: [
          { child: hubCase === 1 ? 0 : 1, prob: alpha, sub: 0 },
          { child: hubCase === 1 ? 1 : 0, prob: beta, sub: 1 },
        ],
        residual,
      };
    }
  }
  // Recursive rejection: child j's proposal q_j; accept w.p. min(1, r(x_j) / q_j(x_j)), else r <- normalise(max(0, r - q_j)).
  let r = Float64Array.from(p);
  const tests: Chain['tests'] = [];
  for (let j = 0; j < w; j++) {
    const x = xs[j]!;
    let qj: Float64Array;
    if (!q) {
      qj = new Float64Array(V);
      qj[x] = 1;
    } else if (method === 'rrs') {
      qj = q;
    } else {
      const removed = new Set(xs.slice(0, j));
      let left = 0;
      for (let i = 0; i < V; i++) if (!removed.has(i)) left += q[i]!;
      qj = Float64Array.from(q, (v, i) => (removed.has(i) || !(left > 0) ? 0 : v / left));
    }
    tests.push({ child: j, prob: qj[x]! > 0 ? r[x]! / qj[x]! : 0, sub: j });
    const next = Float64Array.from(r, (v, i) => Math.max(0, v - qj[i]!));
    const z = next.reduce((a, b) => a + b, 0);
    r = Float64Array.from(next, (v) => (z > 0 ? v / z : 0));
  }
  return { tests, residual: r };
}

/** Exact outcome of a chain: probability that each test accepts, and the bonus distribution's mass (sums to 1 with them). */
export function chainOutcome(chain: Chain, p: Float64Array): { accept: number[]; bonus: Float64Array } {
  let alive = 1;
  const accept = chain.tests.map((t) => {
    const a = alive * Math.min(1, Math.max(0, t.prob));
    alive -= a;
    return a;
  });
  const z = chain.residual.reduce((a, b) => a + b, 0);
  const bonus = new Float64Array(p.length);
  if (z > 0) chain.residual.forEach((v, i) => (bonus[i] = (alive * v) / z));
  else bonus[argmaxOf(p)] = alive;
  return { accept, bonus };
}

/** The children's tokens `expand` writes for a node (w children), with the kernel's uniforms by default. */
export function expandRef(
  qLogits: ArrayLike<number>,
  seq: Pick<TreeSeqSpec, 'method' | 'temperature' | 'draftTemperature' | 'seed' | 'counter'>,
  node: number,
  w: number,
  uniform: (sub: number) => number = (sub) => specUniform(seq.seed, STREAM_EXPAND, seq.counter >>> 0, node * 64 + sub),
): number[] {
  const V = qLogits.length;
  const hub = argmaxOf(qLogits);
  const greedy = seq.method === 'greedy' || seq.temperature <= 0 || seq.draftTemperature <= 0;
  const method = seq.method === 'spechub' && w !== 2 ? 'rrs-wo' : seq.method;
  const q = greedy ? null : softmaxT(qLogits, seq.draftTemperature);
  const xs: number[] = [];
  for (let j = 0; j < w; j++) {
    let x = -1;
    if (greedy) {
      for (let i = 0; i < V; i++) if (!xs.includes(i) && (x < 0 || qLogits[i]! > qLogits[x]!)) x = i;
    } else {
      const without = (ex: number[]): Float64Array => Float64Array.from(q!, (v, i) => (ex.includes(i) ? 0 : v));
      if (method === 'rrs') x = drawIndex(q!, uniform(j));
      else if (method === 'rrs-wo') x = drawIndex(without(xs), uniform(j));
      else if (j === 0) x = drawIndex(q!, uniform(j));
      else if (xs[0] === hub) {
        x = drawIndex(without([hub]), uniform(j));
        if (x < 0) x = hub === 0 ? 1 : 0;
      } else x = hub;
    }
    if (x < 0) x = hub;
    xs.push(x);
  }
  return xs;
}

/**
 * The walk `verify` makes for one sequence, children's tokens as written in `seq.nodes` (after expand).
 * `uniform(ctr, sub)` defaults to the kernel's stream, so sampled walks match the GPU up to f32 knife edges.
 */
export function verifyRef(
  seq: TreeSeqSpec,
  P: (row: number) => ArrayLike<number>,
  Q: (row: number) => ArrayLike<number>,
  uniform: (ctr: number, sub: number) => number = (ctr, sub) => specUniform(seq.seed, STREAM_VERIFY, ctr >>> 0, sub),
): VerifyResult {
  const shape = treeLayout(seq.nodes);
  const greedy = seq.method === 'greedy' || seq.temperature <= 0;
  const path: number[] = [];
  const tokens: VerifyResult['tokens'] = [];
  let c = 0;
  for (let k = 0; ; k++) {
    const nd = seq.nodes[c]!;
    const pl = P(nd.pRow);
    const lsm = logSoftmaxRef(pl);
    const p = softmaxT(pl, greedy ? 0 : seq.temperature);
    const w = k >= MAX_TREE_DEPTH ? 0 : shape.numChildren[c]!;
    const first = shape.firstChild[c]!;
    const xs = seq.nodes.slice(first, first + w).map((n) => n.token);
    const point = nd.qRow === NO_ROW || seq.draftTemperature <= 0;
    const q = greedy || point ? null : softmaxT(Q(nd.qRow), seq.draftTemperature);
    const chain = verifyChain(p, q, xs, seq.method, greedy);
    const ctr = seq.counter + k;
    const hit = chain.tests.find((t) => uniform(ctr, t.sub) < t.prob);
    if (hit) {
      const child = first + hit.child;
      path.push(child);
      tokens.push({ token: xs[hit.child]!, logprob: lsm[xs[hit.child]!]! });
      c = child;
      continue;
    }
    let bonus = drawIndex(chain.residual, uniform(ctr, BONUS_DRAW));
    if (bonus < 0) bonus = argmaxOf(p);
    tokens.push({ token: bonus, logprob: lsm[bonus]! });
    return { path, tokens };
  }
}

/**
 * Exact outcome of verifying a node (one draft tuple enumeration): for each draft tuple, the probability of
 * accepting each child token, and the bonus distribution's mass. Sums to 1 over all accepts and bonuses.
 */
function nodeOutcomes(
  p: Float64Array,
  drafts: Drafts,
  method: VerifyMethod,
): { prob: number; accepted: { token: number; mass: number }[]; bonus: Float64Array }[] {
  const q = drafts.kind === 'point' ? null : drafts.q;
  return draftTuples(drafts, method).map((t) => {
    const chain = verifyChain(p, q, t.tokens, method, false);
    const o = chainOutcome(chain, p);
    return { prob: t.prob, accepted: chain.tests.map((c, j) => ({ token: t.tokens[c.child]!, mass: o.accept[j]! })), bonus: o.bonus };
  });
}

/** Exact distribution of the first emitted token for a depth-1 tree (root with the given drafts). */
export function exactOutputDist(p: Float64Array, drafts: Drafts, method: VerifyMethod): Float64Array {
  const out = new Float64Array(p.length);
  for (const o of nodeOutcomes(p, drafts, method)) {
    for (const a of o.accepted) out[a.token]! += o.prob * a.mass;
    o.bonus.forEach((b, i) => (out[i]! += o.prob * b));
  }
  return out;
}

/**
 * Exact joint distribution [y1 * V + y2] of the first two emitted tokens for a depth-2 tree: the root's
 * children drafted by `drafts`, each child x with target p(.|x) = condP(x) and its own children drafted by
 * condDrafts(x). When y1 is the bonus, y2 is the next step's plain sample from condP(y1).
 */
export function exactJointDist(
  p: Float64Array,
  drafts: Drafts,
  condP: (y: number) => Float64Array,
  condDrafts: (y: number) => Drafts,
  method: VerifyMethod,
): Float64Array {
  const V = p.length;
  const out = new Float64Array(V * V);
  const below = new Map<number, Float64Array>();
  const childDist = (x: number): Float64Array => {
    let d = below.get(x);
    if (!d) below.set(x, (d = exactOutputDist(condP(x), condDrafts(x), method)));
    return d;
  };
  for (const o of nodeOutcomes(p, drafts, method)) {
    for (const a of o.accepted) childDist(a.token).forEach((v, y2) => (out[a.token * V + y2]! += o.prob * a.mass * v));
    o.bonus.forEach((b, y1) => {
      if (b > 0) condP(y1).forEach((v, y2) => (out[y1 * V + y2]! += o.prob * b * v));
    });
  }
  return out;
}

/** Exact expected number of accepted draft tokens at depth 1 (root with w children drafted from q). */
export function expectedAccepted(p: Float64Array, q: Float64Array, method: VerifyMethod, w: number): number {
  let e = 0;
  for (const o of nodeOutcomes(p, { kind: 'sampled', q, w }, method)) for (const a of o.accepted) e += o.prob * a.mass;
  return e;
}

/**
 * The probability that one of two drafted children is accepted at a node (what expectedAccepted
 * computes for w = 2 by enumerating every pair), in closed form: O(V) for RRS and SpecHub, O(V²)
 * for RRS without replacement, so it runs on a real vocabulary. The first rejection leaves the
 * residual r1 = norm(max(0, p - q)) whichever token was rejected.
 */
export function pairAcceptance(p: ArrayLike<number>, q: ArrayLike<number>, method: 'rrs' | 'rrs-wo' | 'spechub'): number {
  const V = p.length;
  let overlap = 0; // sum min(p, q): the first draft's acceptance
  let rest = 0; // sum max(0, p - q)
  for (let i = 0; i < V; i++) {
    overlap += Math.min(p[i]!, q[i]!);
    rest += Math.max(0, p[i]! - q[i]!);
  }
  const r1 = (i: number): number => (rest > 0 ? Math.max(0, p[i]! - q[i]!) / rest : 0);
  if (method === 'rrs') {
    let second = 0;
    for (let i = 0; i < V; i++) second += Math.min(q[i]!, r1(i));
    return overlap + (1 - overlap) * second;
  }
  if (method === 'rrs-wo') {
    let second = 0;
    for (let j = 0; j < V; j++) {
      const rejected = Math.max(0, q[j]! - p[j]!); // P(x1 = j and rejected)
      if (rejected === 0 || q[j]! >= 1) continue;
      let acc = 0;
      for (let i = 0; i < V; i++) if (i !== j) acc += Math.min(q[i]! / (1 - q[j]!), r1(i));
      second += rejected * acc;
    }
    return overlap + second;
  }
  // SpecHub: the hub a = argmax q is always drafted; i != a appears with s(i) = q(i) / (1 - q(a)).
  const a = argmaxRef(q);
  const qa = q[a]!;
  if (qa >= 1) return p[a]!;
  let nonHub = 0;
  for (let i = 0; i < V; i++) if (i !== a) nonHub += Math.min(p[i]!, q[i]! / (1 - qa));
  return nonHub + Math.min(p[a]!, 1 - nonHub);
}

// ---- chi-square --------------------------------------------------------------------------------

function lnGamma(x: number): number {
  // Lanczos (g = 7, n = 9), |error| < 1e-13 for x > 0.
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
    9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) (series below a + 1, continued fraction above). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lead = -x + a * Math.log(x) - lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * Math.exp(lead));
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(lead) * h;
}

/** P(chi-square(dof) >= x). */
export function chiSquareSurvival(x: number, dof: number): number {
  return gammaQ(dof / 2, x / 2);
}

/**
 * Pearson's chi-square of observed counts against expected probabilities, cells with expected count < 5
 * merged (in order of increasing expectation) into one; cells with probability 0 must stay empty.
 */
export function chiSquare(counts: ArrayLike<number>, probs: ArrayLike<number>): { chi2: number; dof: number; p: number; impossible: number } {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]!;
  let impossible = 0;
  const cells: { o: number; e: number }[] = [];
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! <= 0) impossible += counts[i]!;
    else cells.push({ o: counts[i]!, e: n * probs[i]! });
  }
  cells.sort((a, b) => a.e - b.e);
  const merged: { o: number; e: number }[] = [];
  let acc = { o: 0, e: 0 };
  for (const c of cells) {
    if (c.e >= 5 && acc.e === 0) merged.push(c);
    else {
      acc = { o: acc.o + c.o, e: acc.e + c.e };
      if (acc.e >= 5) {
        merged.push(acc);
        acc = { o: 0, e: 0 };
      }
    }
  }
  if (acc.e > 0) {
    if (merged.length > 0) {
      const last = merged[merged.length - 1]!;
      merged[merged.length - 1] = { o: last.o + acc.o, e: last.e + acc.e };
    } else merged.push(acc);
  }
  const chi2 = merged.reduce((s, c) => s + (c.o - c.e) ** 2 / c.e, 0);
  const dof = Math.max(1, merged.length - 1);
  return { chi2, dof, p: chiSquareSurvival(chi2, dof), impossible };
}

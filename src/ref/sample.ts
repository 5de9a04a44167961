// CPU reference of shaders/sample.wgsl: greedy / temperature + top-k + top-p sampling with the shader's
// PCG stream, log-softmax and top logprobs, in float64. A new sampling filter adds a stage in keptSet().

import type { SamplingParams } from '../kernels/sample.js';

/** PCG hash (O'Neill's pcg_hash), the shader's RNG, in u32 arithmetic. */
export function pcgHash(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** The uniform in [0, 1) the sampler draws for (seed, step counter): 24 random bits. */
export function sampleUniform(seed: number, counter: number): number {
  const r = pcgHash((seed >>> 0) ^ pcgHash((counter + 0x9e3779b9) >>> 0));
  return (r >>> 8) / 16777216;
}

/** The settings as the kernel applies them (Sampler.setParams): out-of-range top-k / top-p mean off. */
export function effectiveParams(s: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>, V: number): { temperature: number; topK: number; topP: number } {
  return {
    temperature: s.temperature,
    topK: s.topK > 0 && s.topK < V ? s.topK : 0,
    topP: s.topP > 0 && s.topP < 1 ? s.topP : 1,
  };
}

/** log softmax of the untempered logits. */
export function logSoftmaxRef(logits: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]!);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i]! - mx);
  const lse = mx + Math.log(z);
  return Float64Array.from(logits, (l) => l - lse);
}

/** Highest logit, lowest index on ties. */
export function argmaxRef(logits: ArrayLike<number>): number {
  let bi = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[bi]!) bi = i;
  return bi;
}

export interface KeptSet {
  /** Indices that survive top-k and top-p, ascending. */
  ids: number[];
  /** Their tempered weights exp((l - max) / T), same order. */
  weights: number[];
  /** Distance of top-p's decision from its threshold, as a fraction of the kept mass (Infinity when top-p is off). */
  topPMargin: number;
}

/**
 * The set the sampler draws from (temperature > 0): top-k keeps every token whose logit is >= the k-th
 * largest (ties kept); top-p then keeps the highest-probability survivors, whole tie groups at a time,
 * until their tempered mass reaches topP of the survivors' mass.
 */
export function keptSet(logits: ArrayLike<number>, params: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>): KeptSet {
  const V = logits.length;
  const { temperature: T, topK, topP } = effectiveParams(params, V);
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const mx = logits[order[0]!]!;
  let kmin = -Infinity;
  if (topK > 0) kmin = logits[order[topK - 1]!]!;
  const w = (i: number): number => Math.exp((logits[i]! - mx) / T);
  let zKept = 0;
  for (let i = 0; i < V; i++) if (logits[i]! >= kmin) zKept += w(i);
  let pmin = kmin;
  let topPMargin = Infinity;
  if (topP < 1) {
    const target = topP * zKept;
    let cum = 0;
    let found = false;
    for (let r = 0; r < V;) {
      const v = logits[order[r]!]!;
      if (v < kmin) break;
      while (r < V && logits[order[r]!]! === v) cum += w(order[r++]!);
      topPMargin = Math.min(topPMargin, Math.abs(cum - target) / zKept);
      if (!found && cum >= target) {
        pmin = v;
        found = true;
      }
    }
  }
  const ids: number[] = [];
  const weights: number[] = [];
  for (let i = 0; i < V; i++)
    if (logits[i]! >= pmin) {
      ids.push(i);
      weights.push(w(i));
    }
  return { ids, weights, topPMargin };
}

export interface SampleRefResult {
  token: number;
  /** Untempered log-probability of the token. */
  logprob: number;
  /** The draw's distance from the nearest cumulative boundary, as a fraction of the kept mass (Infinity when greedy). */
  uMargin: number;
  /** See KeptSet.topPMargin. */
  topPMargin: number;
}

/**
 * The token the kernel picks for this seed and step counter: greedy = argmax (lowest index on ties);
 * otherwise the first kept token, in index order, whose cumulative tempered weight exceeds u * total.
 */
export function sampleRef(logits: ArrayLike<number>, params: Pick<SamplingParams, 'temperature' | 'topK' | 'topP' | 'seed'>, counter: number): SampleRefResult {
  const lsm = logSoftmaxRef(logits);
  if (params.temperature <= 0) {
    const token = argmaxRef(logits);
    return { token, logprob: lsm[token]!, uMargin: Infinity, topPMargin: Infinity };
  }
  const kept = keptSet(logits, params);
  const total = kept.weights.reduce((a, b) => a + b, 0);
  const target = sampleUniform(params.seed, counter) * total;
  let cum = 0;
  let token = -1;
  let uMargin = Infinity;
  kept.ids.forEach((id, j) => {
    cum += kept.weights[j]!;
    uMargin = Math.min(uMargin, Math.abs(target - cum) / total);
    if (token < 0 && target < cum) token = id;
  });
  if (token < 0) token = kept.ids[kept.ids.length - 1]!;
  return { token, logprob: lsm[token]!, uMargin, topPMargin: kept.topPMargin };
}

/** The k most likely tokens (untempered), best first, lowest index first among equal logits. */
export function topLogprobsRef(logits: ArrayLike<number>, k: number): { id: number; logprob: number }[] {
  const lsm = logSoftmaxRef(logits);
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  return order.slice(0, k).map((id) => ({ id, logprob: lsm[id]! }));
}

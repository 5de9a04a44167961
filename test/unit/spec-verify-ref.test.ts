// Exactness of the speculative verifiers' math (src/spec/verify-ref.ts): every method's output distribution,
// enumerated over all draft tuples and accept/reject outcomes, equals the target's. To extend: add a method to METHODS.

import { describe, expect, it } from 'vitest';
import {
  chainOutcome,
  chiSquare,
  chiSquareSurvival,
  draftTuples,
  type Drafts,
  exactJointDist,
  exactOutputDist,
  expandRef,
  expectedAccepted,
  pairAcceptance,
  softmaxT,
  verifyChain,
  verifyRef,
} from '../../src/spec/verify-ref.js';
import { NO_ROW, treeLayout, type TreeSeqSpec, type VerifyMethod } from '../../src/spec/verify.js';
import { randn, rng } from '../fixtures/random.js';

const V = 6;

function dist(seed: number, scale: number, n = V): Float64Array {
  return softmaxT(randn(rng(seed), n, scale), 1);
}

/** A distribution with max ~ qmax on token `at`, the rest spread at random. */
function peaked(seed: number, qmax: number, at: number, n = V): Float64Array {
  const r = rng(seed);
  const rest = Float64Array.from({ length: n }, () => r() + 0.05);
  rest[at] = 0;
  const z = rest.reduce((a, b) => a + b, 0);
  const out = Float64Array.from(rest, (v) => (v / z) * (1 - qmax));
  out[at] = qmax;
  return out;
}

function expectDistEqual(got: Float64Array, want: Float64Array, tol = 1e-12): void {
  expect(got.length).toBe(want.length);
  let err = 0;
  got.forEach((g, i) => (err = Math.max(err, Math.abs(g - want[i]!))));
  expect(err, `max |diff| ${err}`).toBeLessThan(tol);
}

const CASES: { name: string; p: Float64Array; q: Float64Array }[] = [];
for (let s = 0; s < 4; s++) {
  CASES.push({ name: `random #${s}`, p: dist(10 + s, 1.5), q: dist(20 + s, 1.5) });
  CASES.push({ name: `peaked q #${s}`, p: dist(30 + s, 1), q: peaked(40 + s, 0.6 + 0.1 * s, s % V) });
  CASES.push({ name: `flat q #${s}`, p: dist(50 + s, 2.5), q: dist(60 + s, 0.1) });
  CASES.push({ name: `peaked p #${s}`, p: peaked(70 + s, 0.9, (s + 2) % V), q: dist(80 + s, 1) });
}
// p and q disjoint-ish, and q equal to p
CASES.push({ name: 'q = p', p: dist(90, 1), q: dist(90, 1) });
CASES.push({ name: 'q almost a point mass', p: dist(91, 1), q: peaked(92, 1 - 1e-9, 3) });

const METHODS: { method: VerifyMethod; widths: number[] }[] = [
  { method: 'rrs', widths: [1, 2, 3] },
  { method: 'rrs-wo', widths: [1, 2, 3] },
  { method: 'spechub', widths: [2, 1, 3] }, // w != 2 falls back to rrs-wo
];

describe('exact output distribution = target (depth 1)', () => {
  for (const { method, widths } of METHODS)
    for (const w of widths)
      it(`${method}, ${w} children`, () => {
        for (const c of CASES) expectDistEqual(exactOutputDist(c.p, { kind: 'sampled', q: c.q, w }, method), c.p);
      });

  it('point-mass children (deterministic drafts, duplicates too), every method', () => {
    const tuples = [[2], [0, 4], [4, 4], [1, 3, 5], [5, 2, 5]];
    for (const method of ['rrs', 'rrs-wo', 'spechub'] as const)
      for (const tokens of tuples) for (const c of CASES) expectDistEqual(exactOutputDist(c.p, { kind: 'point', tokens }, method), c.p);
  });

  it('draft tuples are distributions with the right marginals', () => {
    const q = peaked(5, 0.6, 2);
    for (const { method, widths } of METHODS)
      for (const w of widths) {
        const t = draftTuples({ kind: 'sampled', q, w }, method);
        expect(Math.abs(t.reduce((a, b) => a + b.prob, 0) - 1)).toBeLessThan(1e-12);
        // the first draft is always ~ q
        const first = new Float64Array(V);
        for (const x of t) first[x.tokens[0]!]! += x.prob;
        if (method !== 'spechub' || w !== 2) expectDistEqual(first, q);
      }
    // SpecHub pairs always contain the hub
    for (const x of draftTuples({ kind: 'sampled', q, w: 2 }, 'spechub')) expect(x.tokens).toContain(2);
  });

  it('the check has power: a wrong proposal or residual is not lossless', () => {
    const c = CASES[1]!;
    // rrs-wo drafts verified as if i.i.d. (wrong proposal for the second child)
    const wrong = new Float64Array(V);
    for (const t of draftTuples({ kind: 'sampled', q: c.q, w: 2 }, 'rrs-wo')) {
      const o = chainOutcome(verifyChain(c.p, c.q, t.tokens, 'rrs', false), c.p);
      o.accept.forEach((a, j) => (wrong[t.tokens[j]!]! += t.prob * a));
      o.bonus.forEach((b, i) => (wrong[i]! += t.prob * b));
    }
    let err = 0;
    wrong.forEach((v, i) => (err = Math.max(err, Math.abs(v - c.p[i]!))));
    expect(err).toBeGreaterThan(1e-3);
    // SpecHub's residual without its hub term: bonus from p instead of the residual
    const bad = new Float64Array(V);
    for (const t of draftTuples({ kind: 'sampled', q: c.q, w: 2 }, 'spechub')) {
      const ch = verifyChain(c.p, c.q, t.tokens, 'spechub', false);
      const o = chainOutcome({ ...ch, residual: c.p }, c.p);
      o.accept.forEach((a, j) => (bad[t.tokens[ch.tests[j]!.child]!]! += t.prob * a));
      o.bonus.forEach((b, i) => (bad[i]! += t.prob * b));
    }
    err = 0;
    bad.forEach((v, i) => (err = Math.max(err, Math.abs(v - c.p[i]!))));
    expect(err).toBeGreaterThan(1e-3);
  });
});

describe('exact joint of the first two tokens = p(y1) p(y2 | y1) (depth 2)', () => {
  // A Markov target and draft: p(. | y) and q(. | y) per previous token.
  const condP = Array.from({ length: V }, (_, y) => dist(200 + y, 1.2));
  const condQ = Array.from({ length: V }, (_, y) => (y % 2 ? peaked(300 + y, 0.65, (y + 1) % V) : dist(300 + y, 1)));
  const p0 = dist(199, 1.2);
  const q0 = peaked(299, 0.6, 4);
  const want = new Float64Array(V * V);
  for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) want[a * V + b] = p0[a]! * condP[a]![b]!;

  for (const { method, widths } of METHODS)
    for (const w of widths.slice(0, 2))
      it(`${method}, binary levels of width ${w}`, () => {
        const d = (q: Float64Array): Drafts => ({ kind: 'sampled', q, w });
        expectDistEqual(
          exactJointDist(
            p0,
            d(q0),
            (y) => condP[y]!,
            (y) => d(condQ[y]!),
            method,
          ),
          want,
        );
      });

  it('point-mass children at both levels', () => {
    for (const method of ['rrs', 'rrs-wo', 'spechub'] as const)
      expectDistEqual(
        exactJointDist(
          p0,
          { kind: 'point', tokens: [1, 4] },
          (y) => condP[y]!,
          (y) => ({ kind: 'point', tokens: [(y + 1) % V, (y + 3) % V] }),
          method,
        ),
        want,
      );
  });
});

describe('expected accepted tokens at depth 1', () => {
  it('SpecHub >= RRS without replacement >= RRS when q is peaked (q_max ~ 0.6)', () => {
    const rows: string[] = [];
    let wins = 0;
    for (let s = 0; s < 6; s++) {
      const q = peaked(400 + s, 0.6, s % V);
      // p close to q (a decent draft model), same mode
      const p = softmaxT(
        Float64Array.from(q, (v, i) => Math.log(v) + 1.0 * randn(rng(500 + s), V)[i]!),
        1,
      );
      const hub = expectedAccepted(p, q, 'spechub', 2);
      const wo = expectedAccepted(p, q, 'rrs-wo', 2);
      const rrs = expectedAccepted(p, q, 'rrs', 2);
      rows.push(`q_max ${q[s % V]!.toFixed(2)}: spechub ${hub.toFixed(4)}, rrs-wo ${wo.toFixed(4)}, rrs ${rrs.toFixed(4)}`);
      expect(hub).toBeGreaterThanOrEqual(wo - 1e-12);
      expect(wo).toBeGreaterThanOrEqual(rrs - 1e-12);
      if (hub > wo + 1e-6) wins++;
    }
    expect(wins).toBeGreaterThan(0);
    // flat q: SpecHub can lose (papers.md: 0.642 vs 0.700)
    const qf = dist(600, 0.2);
    const pf = dist(601, 1.5);
    rows.push(`flat q: spechub ${expectedAccepted(pf, qf, 'spechub', 2).toFixed(4)}, rrs-wo ${expectedAccepted(pf, qf, 'rrs-wo', 2).toFixed(4)}`);
    console.log(`spec-verify expected accepted (w = 2, V = ${V}):\n  ${rows.join('\n  ')}`);
  });
});

describe('reference walk and expand', () => {
  it('greedy walk follows the argmax down the tree', () => {
    const P = [
      [0, 1, 5, 0], // root: argmax 2 = second child
      [0, 0, 0, 0],
      [3, 0, 0, 3], // node 2: argmax 0 (tie, lowest index) = its first child
      [0, 0, 0, 0],
      [0, 0, 0, 0],
      [1, 2, 0, 0], // node 3 (leaf): bonus 1
    ];
    const seq: TreeSeqSpec = {
      nodes: [
        { token: 9, parent: -1, pRow: 0, qRow: NO_ROW },
        { token: 1, parent: 0, pRow: 1, qRow: NO_ROW },
        { token: 2, parent: 0, pRow: 2, qRow: NO_ROW },
        { token: 0, parent: 2, pRow: 5, qRow: NO_ROW },
        { token: 3, parent: 2, pRow: 4, qRow: NO_ROW },
      ],
      method: 'greedy',
      temperature: 0,
      draftTemperature: 0,
      seed: 1,
      counter: 0,
    };
    const r = verifyRef(
      seq,
      (row) => P[row]!,
      () => [],
    );
    expect(r.path).toEqual([2, 3]);
    expect(r.tokens.map((t) => t.token)).toEqual([2, 0, 1]);
  });

  it('tree validation rejects bad parents, non-contiguous children, too deep', () => {
    const n = (parent: number) => ({ token: 0, parent, pRow: 0, qRow: NO_ROW });
    expect(() => treeLayout([n(-1), n(0), n(1), n(0)])).toThrow(/contiguous/);
    expect(() => treeLayout([n(-1), n(1)])).toThrow(/parent/);
    expect(() => treeLayout([n(0)])).toThrow(/root/);
    expect(() => treeLayout(Array.from({ length: 10 }, (_, i) => n(i - 1)))).toThrow(/deeper/);
    expect(() => treeLayout(Array.from({ length: 33 }, (_, i) => n(i === 0 ? -1 : 0)))).toThrow(/nodes/);
    expect(treeLayout([n(-1), n(0), n(0), n(1), n(1), n(2)])).toEqual({
      firstChild: [1, 3, 5, 0, 0, 0],
      numChildren: [2, 2, 1, 0, 0, 0],
      depth: [0, 1, 1, 2, 2, 2],
    });
  });

  it('expandRef: greedy top-w, rrs-wo distinct, spechub pairs hold the hub', () => {
    const ql = randn(rng(7), 10, 1.5);
    const base = { temperature: 1, draftTemperature: 1, seed: 3, counter: 5 };
    const top = Array.from({ length: 10 }, (_, i) => i).sort((a, b) => ql[b]! - ql[a]! || a - b);
    expect(expandRef(ql, { ...base, method: 'greedy' }, 0, 3)).toEqual(top.slice(0, 3));
    for (let c = 0; c < 50; c++) {
      const wo = expandRef(ql, { ...base, method: 'rrs-wo', counter: c }, 0, 4);
      expect(new Set(wo).size).toBe(4);
      expect(expandRef(ql, { ...base, method: 'spechub', counter: c }, 0, 2)).toContain(top[0]);
    }
  });

  it('chi-square survival function', () => {
    // scipy.stats.chi2.sf
    expect(chiSquareSurvival(3.84146, 1)).toBeCloseTo(0.05, 5);
    expect(chiSquareSurvival(25.74, 5)).toBeCloseTo(0.0001, 5);
    expect(chiSquareSurvival(30, 30)).toBeCloseTo(0.46565, 4);
    expect(chiSquareSurvival(100, 60)).toBeCloseTo(0.00091683, 7);
    const c = chiSquare([10, 20, 30, 1, 0], [0.1, 0.2, 0.3, 0.01, 0.39]);
    expect(c.dof).toBeGreaterThan(0);
  });
});

describe('pairAcceptance (closed form, for real vocabularies)', () => {
  it('equals the enumerated expectation for every method on random, peaked and flat distributions', () => {
    const r = rng(404);
    for (let k = 0; k < 12; k++) {
      const V = 3 + (k % 5);
      const sharp = k % 3 === 0 ? 4 : k % 3 === 1 ? 1 : 0.2;
      const draw = (): Float64Array =>
        softmaxT(
          Array.from({ length: V }, () => sharp * (r() * 2 - 1) * 3),
          1,
        );
      const p = draw();
      const q = draw();
      for (const m of ['rrs', 'rrs-wo', 'spechub'] as const) expect(pairAcceptance(p, q, m), `${m} case ${k}`).toBeCloseTo(expectedAccepted(p, q, m, 2), 12);
    }
  });
});

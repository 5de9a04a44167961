// GPU test of shaders/spec.wgsl (SpecKernels in src/spec/verify.ts) against src/spec/verify-ref.ts: greedy walks
// token for token, expand's draws, and chi-square tests that drafting + verifying is lossless for every sampled
// method. To extend: add a method to LOSSLESS.

import { describe, expect, it } from 'vitest';
import { storageFrom } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { NODE_WORDS, NO_ROW, SpecKernels, VERIFY_OUT_WORDS, type TreeSeqSpec, type VerifyMethod, type VerifyResult } from '../../src/spec/verify.js';
import { chiSquare, expandRef, expectedAccepted, softmaxT, verifyRef } from '../../src/spec/verify-ref.js';
import { expectClose, gpu, randn, readU32, rng, TOL, TUNINGS, validated, withTuning } from './helpers.js';

/** Rows of logits as one buffer. */
function rowsBuffer(ctx: GpuContext, rows: readonly Float32Array[]): GPUBuffer {
  const V = rows[0]!.length;
  const all = new Float32Array(rows.length * V);
  rows.forEach((r, i) => all.set(r, i * V));
  return storageFrom(ctx.device, all, 'logits');
}

async function submit(ctx: GpuContext, fn: (pass: GPUComputePassEncoder) => void): Promise<void> {
  await validated(ctx, () => {
    const enc = ctx.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    fn(pass);
    pass.end();
    ctx.device.queue.submit([enc.finish()]);
  });
}

/**
 * The real pipeline for a batch of trees, level by level: expand every node with a draft row, read the
 * children's tokens back, let `rows(token)` name the target and draft rows after each new node (the
 * models' forward passes), and finally verify. Returns the trees as verified and the results.
 */
async function pipeline(
  ctx: GpuContext,
  k: SpecKernels,
  seqs: TreeSeqSpec[],
  rows: (token: number) => { pRow: number; qRow: number },
): Promise<{ seqs: TreeSeqSpec[]; results: VerifyResult[] }> {
  const maxDepth = 8;
  const depthOf = (nodes: TreeSeqSpec['nodes'], i: number): number => (i === 0 ? 0 : 1 + depthOf(nodes, nodes[i]!.parent));
  for (let d = 0; d < maxDepth; d++) {
    k.write(seqs);
    const jobs: { seq: number; node: number }[] = [];
    seqs.forEach((s, si) =>
      s.nodes.forEach((n, i) => {
        if (n.qRow !== NO_ROW && depthOf(s.nodes, i) === d && s.nodes.some((c) => c.parent === i)) jobs.push({ seq: si, node: i });
      }),
    );
    if (jobs.length === 0) break;
    for (let j0 = 0; j0 < jobs.length; j0 += 65535) {
      const chunk = jobs.slice(j0, j0 + 65535);
      k.writeJobs(chunk);
      await submit(ctx, (pass) => k.encodeExpand(pass, chunk.length));
    }
    const total = seqs.reduce((a, s) => a + s.nodes.length, 0);
    const words = await readU32(ctx, k.nodesBuffer, total * NODE_WORDS);
    const expanded = new Set(jobs.map((j) => `${j.seq}:${j.node}`));
    seqs = seqs.map((s, si) => ({
      ...s,
      nodes: s.nodes.map((n, i) => {
        if (i === 0 || !expanded.has(`${si}:${n.parent}`)) return n;
        const token = words[(k.nodeBase(si) + i) * NODE_WORDS]!;
        const r = rows(token);
        return { ...n, token, pRow: r.pRow, qRow: n.qRow === NO_ROW ? NO_ROW : r.qRow };
      }),
    }));
  }
  k.write(seqs);
  await submit(ctx, (pass) => k.encodeVerify(pass, seqs.length));
  const out = await readU32(ctx, k.outBuffer, seqs.length * VERIFY_OUT_WORDS);
  return { seqs, results: SpecKernels.parse(out, seqs.length) };
}

/** A binary tree of depth 2 (7 nodes), every node's rows named by its token; tokens to be drafted are 0. */
function binaryTree(rootToken: number, point: ((y: number) => number[]) | null, rows: (token: number) => { pRow: number; qRow: number }): TreeSeqSpec['nodes'] {
  const nodes: TreeSeqSpec['nodes'] = [];
  const add = (token: number, parent: number): void => {
    const r = rows(token);
    nodes.push({ token, parent, pRow: r.pRow, qRow: point ? NO_ROW : r.qRow });
  };
  add(rootToken, -1);
  const kids = point ? point(rootToken) : [0, 0];
  kids.forEach((t) => add(t, 0));
  for (const c of [1, 2]) (point ? point(nodes[c]!.token) : [0, 0]).forEach((t) => add(t, c));
  return nodes;
}

describe('spec verify: greedy walks equal the CPU walk, token for token', () => {
  // not multiples of the workgroup; 1000 gets 64 threads, 33000 (a real vocabulary) 256; on
  // CPU-backed adapters (barrierFree) both get 4
  for (const barrierFree of [false, true])
    for (const V of [1000, 33000])
      it(`V ${V}, barrierFree ${barrierFree}: argmax second child, point-mass tree, GPU-expanded greedy tree, T = 0 with a sampled method`, async () => {
        const ctx = withTuning(
          await gpu(),
          TUNINGS.find((t) => t.barrierFree === barrierFree && !t.matvecSubgroups)!,
        );
        const nRows = 12;
        const P = Array.from({ length: nRows }, (_, i) => randn(rng(700 + i), V, 2));
        const Q = Array.from({ length: nRows }, (_, i) => randn(rng(800 + i), V, 2));
        const am = (l: Float32Array): number => l.reduce((b, v, i) => (v > l[b]! ? i : b), 0);
        // A tie for the argmax in row 3 (lowest index wins).
        P[3]![17] = 50;
        P[3]![911] = 50;
        const pointSeq: TreeSeqSpec = {
          method: 'greedy',
          temperature: 0.7, // method greedy wins over the temperature
          draftTemperature: 1,
          seed: 1,
          counter: 10,
          nodes: [
            { token: 5, parent: -1, pRow: 0, qRow: NO_ROW },
            { token: (am(P[0]!) + 1) % V, parent: 0, pRow: 1, qRow: NO_ROW },
            { token: am(P[0]!), parent: 0, pRow: 3, qRow: NO_ROW }, // the argmax is the second child
            { token: 3, parent: 1, pRow: 4, qRow: NO_ROW },
            { token: 911, parent: 2, pRow: 5, qRow: NO_ROW },
            { token: 17, parent: 2, pRow: 6, qRow: NO_ROW }, // tie: 17 beats 911
            { token: am(P[6]!), parent: 5, pRow: 7, qRow: NO_ROW },
          ],
        };
        const missSeq: TreeSeqSpec = {
          ...pointSeq,
          method: 'rrs',
          temperature: 0, // T <= 0: greedy whatever the method
          nodes: [
            { token: 1, parent: -1, pRow: 8, qRow: NO_ROW },
            { token: (am(P[8]!) + 3) % V, parent: 0, pRow: 9, qRow: NO_ROW },
          ],
        };
        // GPU-expanded greedy tree: drafts are the draft's top tokens; row = token % nRows
        const rows = (token: number): { pRow: number; qRow: number } => ({ pRow: token % nRows, qRow: token % nRows });
        const expSeq = (method: VerifyMethod, temperature: number): TreeSeqSpec => ({
          method,
          temperature,
          draftTemperature: 1,
          seed: 9,
          counter: 0,
          nodes: [
            { token: 2, parent: -1, pRow: 2, qRow: 2 },
            { token: 0, parent: 0, pRow: 0, qRow: 0 },
            { token: 0, parent: 0, pRow: 0, qRow: 0 },
            { token: 0, parent: 0, pRow: 0, qRow: 0 },
            { token: 0, parent: 1, pRow: 0, qRow: 0 },
            { token: 0, parent: 1, pRow: 0, qRow: 0 },
          ],
        });
        // Make the draft agree with the target at the root so the walk goes deep: Q[2] = P[2].
        Q[2] = P[2]!.slice();
        const pBuf = rowsBuffer(ctx, P);
        const qBuf = rowsBuffer(ctx, Q);
        const k = new SpecKernels(ctx, { vocab: V, maxSeqs: 8, maxNodes: 64, pLogits: pBuf, qLogits: qBuf });
        // A chain of MAX_TREE_DEPTH drafts, each the target's argmax: all accepted, then the bonus at depth 8.
        const chainSeq: TreeSeqSpec = {
          ...pointSeq,
          nodes: Array.from({ length: 9 }, (_, d) => ({ token: d === 0 ? 4 : am(P[(d - 1) % nRows]!), parent: d - 1, pRow: d % nRows, qRow: NO_ROW })),
        };
        const seqs = [pointSeq, missSeq, expSeq('greedy', 1), expSeq('spechub', 0), chainSeq];
        const { seqs: done, results } = await pipeline(ctx, k, seqs, rows);
        // expand: each expanded node's children are the draft's top tokens
        for (const s of done.slice(2, 4))
          for (const [node, w] of [
            [0, 3],
            [1, 2],
          ] as const) {
            const first = s.nodes.findIndex((n) => n.parent === node);
            const got = s.nodes.slice(first, first + w).map((n) => n.token);
            expect(got).toEqual(expandRef(Q[s.nodes[node]!.qRow]!, s, node, w));
          }
        const want = done.map((s) =>
          verifyRef(
            s,
            (r) => P[r]!,
            (r) => Q[r]!,
          ),
        );
        expect(results.map((r) => r.path)).toEqual(want.map((r) => r.path));
        expect(results.map((r) => r.tokens.map((t) => t.token))).toEqual(want.map((r) => r.tokens.map((t) => t.token)));
        expectClose(
          results.flatMap((r) => r.tokens.map((t) => t.logprob)),
          want.flatMap((r) => r.tokens.map((t) => t.logprob)),
          { maxNmse: TOL.transcendental },
        );
        expect(want[0]!.path).toEqual([2, 5, 6]); // second child, then the tie's lowest index, then a leaf
        expect(want[1]!.path).toEqual([]); // no child matched: bonus only
        expect(want[2]!.path.length).toBeGreaterThan(0);
        expect(want[4]!.path).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
        expect(want[4]!.tokens[8]!.token).toBe(am(P[8]!));
        expect(k.workgroupSize).toBe(barrierFree ? 4 : V > 4096 ? 256 : 64);
      });
});

describe('spec verify: sampled walks match the reference draw for draw', () => {
  // The reference uses the kernel's random stream, so each walk is the same except where f32 and
  // float64 land on opposite sides of an accept test or a draw boundary (rare).
  it('rrs, rrs-wo, spechub at 256 threads, V = 300', async () => {
    const ctx = await gpu();
    const V = 300;
    const nRows = 16;
    const P = Array.from({ length: nRows }, (_, i) => randn(rng(900 + i), V, 2));
    const Q = Array.from({ length: nRows }, (_, i) => {
      const l = randn(rng(950 + i), V, 1);
      for (let j = 0; j < V; j++) l[j] = l[j]! + P[i]![j]!;
      return l;
    });
    const rows = (token: number): { pRow: number; qRow: number } => ({ pRow: token % nRows, qRow: (token * 7) % nRows });
    const n = 60;
    const k = new SpecKernels(ctx, {
      vocab: V,
      maxSeqs: 3 * n,
      maxNodes: 3 * n * 7,
      pLogits: rowsBuffer(ctx, P),
      qLogits: rowsBuffer(ctx, Q),
      workgroupSize: 256,
    });
    const seqs: TreeSeqSpec[] = (['rrs', 'rrs-wo', 'spechub'] as const).flatMap((method, mi) =>
      Array.from({ length: n }, (_, i) => ({
        method,
        temperature: 0.9,
        draftTemperature: 1.2,
        seed: 77 + mi,
        counter: i * 5,
        nodes: binaryTree(i % nRows, null, rows),
      })),
    );
    const { seqs: done, results } = await pipeline(ctx, k, seqs, rows);
    let mismatched = 0;
    let accepted = 0;
    done.forEach((s, i) => {
      const first = s.nodes.slice(1, 3).map((x) => x.token);
      const want = verifyRef(
        s,
        (r) => P[r]!,
        (r) => Q[r]!,
      );
      const draftsOk = JSON.stringify(first) === JSON.stringify(expandRef(Q[s.nodes[0]!.qRow]!, s, 0, 2));
      if (!draftsOk || JSON.stringify(results[i]!.tokens.map((t) => t.token)) !== JSON.stringify(want.tokens.map((t) => t.token))) mismatched++;
      accepted += results[i]!.path.length;
    });
    console.log(`spec-verify draw-for-draw: ${done.length - mismatched} of ${done.length} sampled walks equal the reference's`);
    expect(mismatched, `${mismatched} of ${done.length} walks differ`).toBeLessThanOrEqual(3);
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('spec expand: draws', () => {
  for (const [workgroupSize, N] of [
    [undefined, 1500],
    [256, 300],
  ] as const)
    it(`${workgroupSize ?? 'default'} threads: rrs draws follow q, rrs-wo children are distinct, spechub pairs hold the hub; tokens match expandRef`, async () => {
      const ctx = await gpu();
      const V = 8;
      const ql = new Float32Array([1.0, 2.2, -0.5, 0.3, 1.6, 0.0, -1.0, 0.9]);
      const Td = 0.9;
      const q = softmaxT(ql, Td);
      const hub = 1;
      const k = new SpecKernels(ctx, { vocab: V, maxSeqs: N, maxNodes: N * 5, pLogits: rowsBuffer(ctx, [ql]), qLogits: rowsBuffer(ctx, [ql]), workgroupSize });
      const run = async (method: VerifyMethod, w: number): Promise<{ seqs: TreeSeqSpec[]; tokens: number[][] }> => {
        const seqs: TreeSeqSpec[] = Array.from({ length: N }, (_, i) => ({
          method,
          temperature: 1,
          draftTemperature: Td,
          seed: 4242,
          counter: i * 3,
          nodes: [{ token: 0, parent: -1, pRow: 0, qRow: 0 }, ...Array.from({ length: w }, () => ({ token: 0, parent: 0, pRow: 0, qRow: NO_ROW }))],
        }));
        k.write(seqs);
        k.writeJobs(seqs.map((_, seq) => ({ seq, node: 0 })));
        await submit(ctx, (pass) => k.encodeExpand(pass, N));
        const words = await readU32(ctx, k.nodesBuffer, N * (w + 1) * NODE_WORDS);
        return { seqs, tokens: seqs.map((_, s) => Array.from({ length: w }, (_, j) => words[(s * (w + 1) + 1 + j) * NODE_WORDS]!)) };
      };
      const sameAsRef = (r: { seqs: TreeSeqSpec[]; tokens: number[][] }): number =>
        r.tokens.filter((t, s) => JSON.stringify(t) !== JSON.stringify(expandRef(ql, r.seqs[s]!, 0, t.length))).length;

      const rrs = await run('rrs', 3);
      const counts = new Array<number>(V).fill(0);
      for (const t of rrs.tokens) for (const x of t) counts[x]!++;
      const c = chiSquare(counts, q);
      expect(c.p, `rrs expand chi2 ${c.chi2} dof ${c.dof} counts ${counts.join(',')}`).toBeGreaterThan(0.001);
      expect(sameAsRef(rrs)).toBeLessThanOrEqual(N / 100); // f32 vs f64 knife edges only

      const wo = await run('rrs-wo', 4);
      for (const t of wo.tokens) expect(new Set(t).size).toBe(4);
      const first = new Array<number>(V).fill(0);
      for (const t of wo.tokens) first[t[0]!]!++;
      expect(chiSquare(first, q).p).toBeGreaterThan(0.001);
      expect(sameAsRef(wo)).toBeLessThanOrEqual(N / 100);

      const hubRun = await run('spechub', 2);
      let hubFirst = 0;
      for (const t of hubRun.tokens) {
        expect(t).toContain(hub);
        expect(t[0]).not.toBe(t[1]);
        if (t[0] === hub) hubFirst++;
      }
      // x1 ~ q: the hub comes first with probability q(hub)
      const z = (hubFirst - N * q[hub]!) / Math.sqrt(N * q[hub]! * (1 - q[hub]!));
      expect(Math.abs(z)).toBeLessThan(4);
      expect(sameAsRef(hubRun)).toBeLessThanOrEqual(N / 100);
    });
});

describe('spec verify: lossless (chi-square of the first two tokens against p(y1) p(y2 | y1))', () => {
  const V = 7;
  const T = 0.8;
  const Td = 1.1;
  const N = 20000;
  // Markov target and draft: the logits after token y are row y.
  const P = Array.from({ length: V }, (_, y) => randn(rng(1000 + y), V, 1.3));
  const Q = Array.from({ length: V }, (_, y) => {
    const l = randn(rng(2000 + y), V, 0.6);
    // a draft that roughly agrees with the target, peaked on one token for half the rows
    for (let i = 0; i < V; i++) l[i] = l[i]! + (P[y]![i]! * T) / Td;
    if (y % 2) l[(y + 2) % V] = l[(y + 2) % V]! + 2.5;
    return l;
  });
  const rows = (token: number): { pRow: number; qRow: number } => ({ pRow: token, qRow: token });
  const rootToken = 3;
  const condP = P.map((l) => softmaxT(l, T));
  const want = new Float64Array(V * V);
  for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) want[a * V + b] = condP[rootToken]![a]! * condP[a]![b]!;

  const LOSSLESS: { name: string; method: VerifyMethod; point: ((y: number) => number[]) | null; seed: number }[] = [
    { name: 'rrs', method: 'rrs', point: null, seed: 11 },
    { name: 'rrs-wo', method: 'rrs-wo', point: null, seed: 12 },
    { name: 'spechub', method: 'spechub', point: null, seed: 13 },
    // deterministic drafts (prompt lookup): the second pair holds a repeat to exercise duplicates
    { name: 'point-mass', method: 'spechub', point: (y) => (y % 3 ? [(y + 1) % V, (y + 4) % V] : [(y + 1) % V, (y + 1) % V]), seed: 14 },
  ];

  for (const m of LOSSLESS)
    it(`${m.name}: ${N} draws`, async () => {
      const ctx = await gpu();
      const t0 = performance.now();
      const k = new SpecKernels(ctx, { vocab: V, maxSeqs: N, maxNodes: N * 7, pLogits: rowsBuffer(ctx, P), qLogits: rowsBuffer(ctx, Q) });
      const seqs: TreeSeqSpec[] = Array.from({ length: N }, (_, i) => ({
        method: m.method,
        temperature: T,
        draftTemperature: Td,
        seed: m.seed,
        counter: i * 8,
        nodes: binaryTree(rootToken, m.point, rows),
      }));
      const { results } = await pipeline(ctx, k, seqs, rows);
      const counts = new Array<number>(V * V).fill(0);
      let accepted = 0;
      const next = rng(m.seed * 31 + 7);
      for (const r of results) {
        // two tokens: accepted ones first, then the bonus; with no accepted token the second is the next step's plain sample
        accepted += r.path.length;
        const y1 = r.tokens[0]!.token;
        let y2 = r.tokens[1]?.token;
        if (y2 === undefined) y2 = nextSample(condP[y1]!, next);
        counts[y1 * V + y2]!++;
      }
      const c = chiSquare(counts, want);
      const ms = performance.now() - t0;
      console.log(
        `spec-verify chi2 ${m.name}: draws=${N}, chi2=${c.chi2.toFixed(2)}, dof=${c.dof}, p=${c.p.toFixed(4)}, mean accepted=${(accepted / N).toFixed(3)} (${(ms / 1000).toFixed(1)} s)`,
      );
      expect(c.impossible).toBe(0);
      expect(c.p, `chi2 ${c.chi2} dof ${c.dof}`).toBeGreaterThan(0.001);
      if (!m.point) {
        // the root's acceptance rate is the exact one (drafts drawn the way the verifier assumes)
        const e = expectedAccepted(condP[rootToken]!, softmaxT(Q[rootToken]!, Td), m.method, 2);
        const got = results.filter((r) => r.path.length > 0).length / N;
        expect(Math.abs(got - e), `root acceptance ${got}, exact ${e}`).toBeLessThan(5 * Math.sqrt((e * (1 - e)) / N));
      }
    });

  /** The next step's plain sample from p(. | y1) when the step emitted only the bonus (a seeded stream of its own). */
  function nextSample(p: Float64Array, next: () => number): number {
    const u = next();
    let acc = 0;
    for (let i = 0; i < p.length; i++) {
      acc += p[i]!;
      if (u < acc) return i;
    }
    return p.length - 1;
  }
});

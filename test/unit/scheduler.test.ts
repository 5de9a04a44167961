// Unit tests of src/engine/scheduler.ts over a fake executor that keeps a simulated KV pool: every
// fed token is written to the row its block table names, and the "next token" is a hash of the
// whole context read back through the table (plus the seed and the RNG counter). A wrong block
// table, a prefix-cache block with other content, a lost position or a wrong counter changes the
// output, so "equal to the solo run" checks the paging, not just the plumbing.

import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { ngramPaths, Scheduler, type SeqOutcome, type SeqRequest, type SpeculativeOptions, type StepExecutor } from '../../src/engine/scheduler.js';
import type { SamplingParams } from '../../src/kernels/sample.js';
import { BlockPool } from '../../src/kv/block-pool.js';
import type { DraftedTree, DraftJob, StepResult, StepSeq } from '../../src/model/forward.js';
import { depths, treeFromPaths, type TreeShape } from '../../src/spec/tree.js';
import { rng } from '../fixtures/random.js';

const V = 50;
const EOG = 0;

interface Opts {
  maxContext: number;
  maxBatch: number;
  maxSeqs: number;
  maxOutputs: number;
  blockSize: number;
  numBlocks: number;
}

class FakeRunner implements StepExecutor {
  readonly pool: BlockPool;
  readonly numLayers = 4;
  /** Next token = the token 4 positions back (read through the table), bumped when the context hash says so: repetitive text, so n-gram drafts are often right and sometimes wrong. */
  repetitive = false;
  /** Pool row → (position, token) written there. */
  private readonly rows = new Map<number, { pos: number; token: number }>();
  readonly log: { blocks: number[]; startPos: number; n: number; sampled: boolean; tree: number }[][] = [];
  /** Draft jobs per draftTrees call (self-draft). */
  readonly drafts: number[] = [];
  constructor(readonly opts: Opts) {
    this.pool = new BlockPool(opts.numBlocks, opts.blockSize);
  }
  private row(blocks: readonly number[], pos: number): number {
    const bs = this.opts.blockSize;
    const b = blocks[Math.floor(pos / bs)];
    if (b === undefined) throw new Error(`position ${pos} past the block table`);
    if (this.pool.refCount(b) === 0) throw new Error(`block ${b} is not held by anyone`);
    return b * bs + (pos % bs);
  }
  /** The token in the cache at `slot`, which must hold position `pos`. */
  private read(blocks: readonly number[], slot: number, pos = slot): number {
    const cell = this.rows.get(this.row(blocks, slot));
    if (!cell || cell.pos !== pos) throw new Error(`slot ${slot} (position ${pos}) reads a row holding ${JSON.stringify(cell)}`);
    return cell.token;
  }
  /** The target's sample after `context` (its positions are read through the table up to `committed`, the tree's ancestors from their slots). */
  private next(
    blocks: readonly number[],
    seed: number,
    counter: number,
    committed: number,
    treeSlots: readonly [slot: number, pos: number][] = [],
  ): StepResult {
    const ctx: number[] = [];
    for (let pos = 0; pos < committed; pos++) ctx.push(this.read(blocks, pos));
    for (const [slot, pos] of treeSlots) ctx.push(this.read(blocks, slot, pos));
    let h = 0x811c9dc5 ^ seed ^ Math.imul(counter + 1, 0x9e3779b1);
    for (const t of ctx) h = Math.imul(h ^ t, 0x01000193);
    let token = (h >>> 0) % V;
    const end = ctx.length;
    if (this.repetitive && end >= 4) token = (ctx[end - 4]! + ((h >>> 0) % 5 === 0 ? 1 : 0)) % V || 1;
    return { token, logprob: -1, topLogprobs: [] };
  }
  /** Slots and positions of node i's ancestors and itself, root first. */
  private static lineage(shape: TreeShape, start: number, i: number): [number, number][] {
    const ds = depths(shape);
    const out: [number, number][] = [];
    for (let a = i; a >= 0; a = shape.parents[a]!) out.unshift([start + a, start + ds[a]!]);
    return out;
  }
  run(seqs: readonly StepSeq[]): Promise<(StepResult | null)[]> {
    const total = seqs.reduce((a, s) => a + s.tokens.length, 0);
    if (total > this.opts.maxBatch || seqs.length > this.opts.maxSeqs) throw new Error(`step of ${total} tokens / ${seqs.length} seqs`);
    const outs = seqs.reduce((a, s) => a + (s.sample ? (s.tree ? s.tokens.length : 1) : 0), 0);
    if (outs > this.opts.maxOutputs) throw new Error(`step of ${outs} outputs`);
    this.log.push(
      seqs.map((s) => ({ blocks: [...s.blocks], startPos: s.startPos, n: s.tokens.length, sampled: !!s.sample, tree: s.tree ? s.tokens.length : 0 })),
    );
    // Writes first (as rope_qkv before attention), then reads. A tree node at slot start + i holds position start + depth.
    for (const s of seqs) {
      const ds = s.tree ? depths(s.tree.shape) : null;
      for (let i = 0; i < s.tokens.length; i++) this.rows.set(this.row(s.blocks, s.startPos + i), { pos: s.startPos + (ds ? ds[i]! : i), token: s.tokens[i]! });
    }
    const out = seqs.map((s): StepResult | null => {
      if (!s.sample) return null;
      const { seed } = s.sample.sampling;
      if (!s.tree) return this.next(s.blocks, seed, s.sample.counter, s.startPos + s.tokens.length);
      // Verify: walk down while a child holds the target's sample; then move the path's rows into place (kv-move.wgsl).
      const { shape } = s.tree;
      const chain: StepResult[] = [];
      const path: number[] = [];
      for (let c = 0; ;) {
        const r = this.next(s.blocks, seed, s.sample.counter + path.length, s.startPos, FakeRunner.lineage(shape, s.startPos, c));
        chain.push(r);
        const kid = shape.parents.findIndex((p, i) => p === c && s.tokens[i] === r.token);
        if (kid < 0) break;
        path.push(kid);
        c = kid;
      }
      chain.pop();
      const bonus = this.next(s.blocks, seed, s.sample.counter + path.length, s.startPos, FakeRunner.lineage(shape, s.startPos, path.at(-1) ?? 0));
      chain.push(bonus);
      path.forEach((node, d) => {
        const cell = this.rows.get(this.row(s.blocks, s.startPos + node))!;
        this.rows.set(this.row(s.blocks, s.startPos + 1 + d), { ...cell });
      });
      return { ...bonus, chain, accepted: path.length };
    });
    return Promise.resolve(out);
  }
  /** A self-draft: each node's first child is the target's own next token, wrong when the context hash says so; other children follow it. */
  draftTrees(jobs: readonly DraftJob[], layers: number): Promise<DraftedTree[]> {
    if (!(layers >= 1 && layers < this.numLayers)) throw new Error(`self-draft of ${layers} layers`);
    this.drafts.push(jobs.length);
    return Promise.resolve(
      jobs.map((j) => {
        const tokens = j.shape.parents.map((_, i) => (i === 0 ? j.root : -1));
        // The root's row is written by the draft pass too (the target overwrites it with the same token).
        this.rows.set(this.row(j.blocks, j.startPos), { pos: j.startPos, token: j.root });
        const ds = depths(j.shape);
        for (let i = 1; i < tokens.length; i++) {
          const p = j.shape.parents[i]!;
          const rank = i - j.shape.parents.indexOf(p);
          const best = this.next(j.blocks, j.seed, j.counter + ds[p]!, j.startPos, FakeRunner.lineage(j.shape, j.startPos, p)).token;
          const wrong = (best * 7 + i) % 4 === 0;
          tokens[i] = (best + rank + (wrong ? 1 : 0)) % V;
          this.rows.set(this.row(j.blocks, j.startPos + i), { pos: j.startPos + ds[i]!, token: tokens[i]! });
        }
        return { tokens, qRows: tokens.map((_, i) => i) };
      }),
    );
  }
}

const greedy: SamplingParams = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
const opts = (o: Partial<Opts> = {}): Opts => ({ maxContext: 64, maxBatch: 16, maxSeqs: 8, maxOutputs: 24, blockSize: 4, numBlocks: 64, ...o });

function req(promptTokens: number[], maxTokens: number, extra: Partial<SeqRequest> = {}): SeqRequest {
  return { promptTokens, maxTokens, sampling: { ...greedy, seed: promptTokens.length }, isEog: (t) => t === EOG, ...extra };
}

/** The request alone on a roomy pool. */
async function solo(r: SeqRequest, o: Partial<Opts> = {}): Promise<SeqOutcome> {
  return new Scheduler(new FakeRunner(opts({ numBlocks: 256, maxSeqs: 1, ...o }))).submit({ ...r, signal: undefined, onToken: undefined });
}

function checked(o: Partial<Opts> = {}): { s: Scheduler; f: FakeRunner } {
  const f = new FakeRunner(opts(o));
  const s = new Scheduler(f);
  s.afterStep = () => s.checkInvariants();
  return { s, f };
}

const seqTokens = (r: () => number, n: number): number[] => Array.from({ length: n }, () => 1 + Math.floor(r() * (V - 1)));

describe('Scheduler', () => {
  it('gives a lone request blocks 0, 1, 2 and a later request sharing its prefix the same first blocks', async () => {
    const { s, f } = checked();
    const p1 = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
    const a = await s.submit(req(p1, 3, { isEog: () => false }));
    expect(a.tokens).toHaveLength(3);
    expect(f.log[0]).toEqual([{ blocks: [0, 1, 2], startPos: 0, n: 10, sampled: true, tree: 0 }]);
    // 10 prompt + 2 fed generated tokens = 12 = 3 full blocks, all sealed; released tail first.
    expect(f.pool.stats()).toMatchObject({ used: 0, cached: 3 });
    const p2 = [...p1.slice(0, 8), 40, 41, 42];
    const b = await s.submit(req(p2, 2, { isEog: () => false }));
    expect(b.cachedTokens).toBe(8);
    expect(f.log[3]).toEqual([{ blocks: [0, 1, 3], startPos: 8, n: 3, sampled: true, tree: 0 }]);
    expect(b).toMatchObject({ tokens: (await solo(req(p2, 2, { isEog: () => false }))).tokens });
    expect(s.stats().prefixHitTokens).toBe(8);
  });

  it('serves concurrent requests in the same steps, each equal to its solo run', async () => {
    const { s, f } = checked({ maxBatch: 32 });
    const r = rng(1);
    const reqs = [3, 9, 14, 1].map((n, i) => req(seqTokens(r, n), 6 + i, { isEog: () => false }));
    const outs = await Promise.all(reqs.map((q) => s.submit(q)));
    for (const [i, q] of reqs.entries()) expect(outs[i]!.tokens).toEqual((await solo(q)).tokens);
    expect(f.log[0]!.length).toBe(4); // all admitted in the first step
    expect(f.log[1]!.every((q) => q.n === 1)).toBe(true); // then decode together
    expect(s.stats().maxSeqsInStep).toBe(4);
  });

  it('puts decodes first and fills the rest of the token budget with a prefill chunk', async () => {
    const { s, f } = checked({ maxBatch: 8 });
    const r = rng(2);
    const long = req(seqTokens(r, 20), 2, { isEog: () => false });
    let second: Promise<SeqOutcome> | null = null;
    // The long request arrives while the first one decodes: it is admitted behind its decode.
    const firstReq = req(seqTokens(r, 3), 10, { isEog: () => false, onToken: () => void (second ??= s.submit(long)) });
    const a = await s.submit(firstReq);
    const b = await second!;
    const mixed = f.log.find((st) => st.length === 2)!;
    expect(mixed[0]).toMatchObject({ n: 1, sampled: true });
    expect(mixed[1]).toMatchObject({ n: 7, startPos: 0, sampled: false });
    expect(f.log.every((st) => st.reduce((x, q) => x + q.n, 0) <= 8)).toBe(true);
    expect(a.tokens).toEqual((await solo(firstReq)).tokens);
    expect(b.tokens).toEqual((await solo(long)).tokens);
  });

  it('preempts the newest sequence when pages run out and its output equals an uninterrupted run', async () => {
    // 6 blocks of 4: each request peaks at 8 + 12 - 1 = 19 tokens (5 blocks); both fit at first.
    const { s, f } = checked({ numBlocks: 6 });
    const r = rng(3);
    const reqs = [req(seqTokens(r, 8), 12, { isEog: () => false }), req(seqTokens(r, 8), 12, { isEog: () => false })];
    const outs = await Promise.all(reqs.map((q) => s.submit(q)));
    expect(s.stats().preemptions).toBeGreaterThan(0);
    expect(outs[1]!.preemptions).toBeGreaterThan(0);
    expect(outs[0]!.preemptions).toBe(0); // the older one is never the victim
    for (const [i, q] of reqs.entries()) expect(outs[i]!.tokens).toEqual((await solo(q)).tokens);
    expect(f.pool.stats().used).toBe(0);
  });

  it('refuses a request that can never fit with OUT_OF_KV_BLOCKS and the numbers, and one longer than the context with CONTEXT_OVERFLOW', async () => {
    const { s } = checked({ numBlocks: 8 });
    const e = await s.submit(req(seqTokens(rng(4), 30), 10)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect(e).toMatchObject({ code: 'OUT_OF_KV_BLOCKS', details: { needBlocks: 10, numBlocks: 8, blockSize: 4 } });
    const long = await s.submit(req(seqTokens(rng(4), 64), 1)).catch((x: unknown) => x);
    expect(long).toMatchObject({ code: 'CONTEXT_OVERFLOW', details: { promptTokens: 64, maxContext: 64 } });
    // max_tokens is clipped to the context: 60 + 4 fits in 64 (16 blocks)
    const ok = await checked({ numBlocks: 16 }).s.submit(req(seqTokens(rng(5), 60), 100, { isEog: () => false }));
    expect(ok).toMatchObject({ finishReason: 'length' });
    expect(ok.tokens).toHaveLength(4);
  });

  it('ends on an end-of-generation token (not returned) and on a stop from onToken', async () => {
    const { s } = checked();
    const q = req([3, 4, 5], 40, { isEog: () => false });
    const full = await solo(q);
    const eogAt = full.tokens[2]!;
    const a = await s.submit({ ...q, isEog: (t) => t === eogAt });
    expect(a.finishReason).toBe('stop');
    expect(a.tokens).toEqual(full.tokens.slice(0, full.tokens.indexOf(eogAt)));
    let seen = 0;
    const b = await s.submit({ ...q, onToken: () => ++seen === 5 });
    expect(b).toMatchObject({ finishReason: 'stop', tokens: full.tokens.slice(0, 5) });
  });

  it('an abort ends the request within one step and frees its pages, queued or running', async () => {
    const { s, f } = checked();
    const ac = new AbortController();
    let n = 0;
    const running = s.submit(req([1, 2, 3], 50, { isEog: () => false, signal: ac.signal, onToken: () => void (++n === 3 && ac.abort()) }));
    const pre = new AbortController();
    pre.abort();
    const queued = s.submit(req([7, 8], 5, { signal: pre.signal }));
    await expect(queued).resolves.toMatchObject({ finishReason: 'abort', tokens: [] });
    const r = await running;
    expect(r.finishReason).toBe('abort');
    expect(r.tokens).toHaveLength(3);
    expect(f.pool.stats().used).toBe(0);
  });

  it('a step that throws fails every request in it and leaves the pool whole', async () => {
    const f = new FakeRunner(opts());
    const s = new Scheduler(f);
    let calls = 0;
    const run = f.run.bind(f);
    f.run = (seqs) => (++calls === 3 ? Promise.reject(new EngineError('DEVICE_LOST', 'lost')) : run(seqs));
    const outs = await Promise.allSettled([s.submit(req([1, 2], 10)), s.submit(req([3, 4, 5], 10))]);
    expect(outs.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(f.pool.stats().used).toBe(0);
    f.pool.check(new Map());
    // and it serves again afterwards
    await expect(s.submit(req([1, 2], 2, { isEog: () => false }))).resolves.toMatchObject({ finishReason: 'length' });
  });

  it('stress: 64 concurrent requests, random lengths, shared prefixes, random aborts, a pool too small for all', async () => {
    const o = { numBlocks: 24, maxBatch: 16, maxSeqs: 8, maxContext: 64 };
    const { s, f } = checked(o);
    let steps = 0;
    s.afterStep = () => {
      s.checkInvariants();
      steps++;
    };
    const r = rng(42);
    const prefixes = [seqTokens(r, 12), seqTokens(r, 8), seqTokens(r, 5)];
    const reqs: SeqRequest[] = [];
    const abortAt: (number | null)[] = [];
    for (let i = 0; i < 64; i++) {
      const base = r() < 0.6 ? prefixes[Math.floor(r() * prefixes.length)]! : [];
      const prompt = [...base, ...seqTokens(r, 1 + Math.floor(r() * 30))].slice(0, 50);
      const ac = new AbortController();
      const at = r() < 0.25 ? Math.floor(r() * 10) : null;
      abortAt.push(at);
      let n = 0;
      reqs.push(
        req(prompt, 1 + Math.floor(r() * 30), {
          signal: ac.signal,
          // aborts before the first token (at 0: right away) or after `at` tokens
          onToken: () => void (at !== null && ++n >= at && ac.abort()),
        }),
      );
      if (at === 0) setTimeout(() => ac.abort(), Math.floor(r() * 5));
    }
    const outs = await Promise.all(reqs.map((q) => s.submit(q)));
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0 });
    expect(f.pool.stats().used).toBe(0);
    f.pool.check(new Map());
    expect(s.stats().preemptions).toBeGreaterThan(0);
    expect(s.stats().prefixHitTokens).toBeGreaterThan(0);
    expect(s.stats().maxSeqsInStep).toBeGreaterThanOrEqual(4);
    let finished = 0;
    for (const [i, q] of reqs.entries()) {
      const out = outs[i]!;
      if (out.finishReason === 'abort') {
        expect(abortAt[i]).not.toBeNull();
        continue;
      }
      finished++;
      expect(out.tokens, `request ${i}`).toEqual((await solo(q, { maxContext: 64 })).tokens);
    }
    expect(finished).toBeGreaterThan(32);
    expect(steps).toBeGreaterThan(0);
  });
});

describe('speculative decoding (token trees over a fake target)', () => {
  it('ngramPaths proposes what followed the latest earlier occurrence of the longest matching suffix', () => {
    expect(ngramPaths([1, 2, 3, 4, 1, 2, 3], 1, 3, 3)).toEqual([[4, 1, 2]]);
    expect(ngramPaths([5, 1, 2, 9, 9, 1, 2], 1, 2, 3)).toEqual([[9, 9]]);
    expect(ngramPaths([7, 8, 9], 1, 4, 3)).toEqual([]);
    // the latest occurrence wins, and a draft stops at the end of the context
    expect(ngramPaths([1, 5, 1, 6, 1], 1, 4, 1)).toEqual([[6, 1]]);
  });

  it('ngramPaths gives up to width continuations with different first tokens, and treeFromPaths merges their prefixes', () => {
    expect(ngramPaths([1, 5, 6, 1, 7, 8, 1], 2, 2, 1)).toEqual([
      [7, 8],
      [5, 6],
    ]);
    expect(ngramPaths([1, 5, 6, 1, 5, 8, 1], 3, 2, 1)).toEqual([[5, 8]]); // same first token: one branch
    const t = treeFromPaths(9, [[7, 8], [7, 4], [5]]);
    expect(t).toEqual({ shape: { parents: [-1, 0, 0, 1, 1] }, tokens: [9, 7, 5, 8, 4] });
    expect(
      treeFromPaths(
        9,
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        4,
      ).shape.parents,
    ).toEqual([-1, 0, 0, 1]);
  });

  const SPECS: [name: string, spec: SpeculativeOptions][] = [
    ['n-gram chain', { draft: 'ngram', depth: 4 }],
    ['n-gram tree of width 2', { draft: 'ngram', tree: { width: 2, depth: 4 } }],
    ['self-draft chain', { draft: 'self:2', tree: { width: 1, depth: 3 } }],
    ['self-draft binary tree', { draft: 'self:1', tree: { width: 2, depth: 3 } }],
  ];
  for (const [name, spec] of SPECS)
    describe(name, () => {
      it('gives token for token the plain greedy output, with fewer target passes, alone and batched', async () => {
        const r = rng(11);
        const reqs = [0, 1, 2, 3].map((i) => req(seqTokens(r, 6 + i), 40, { isEog: () => false }));
        const plain: SeqOutcome[] = [];
        for (const q of reqs) {
          const f = new FakeRunner(opts({ maxSeqs: 1 }));
          f.repetitive = true;
          plain.push(await new Scheduler(f).submit(q));
        }
        const { s, f } = checked();
        f.repetitive = true;
        const outs = await Promise.all(reqs.map((q) => s.submit({ ...q, speculative: spec })));
        outs.forEach((o, i) => expect(o.tokens, `request ${i}`).toEqual(plain[i]!.tokens));
        const st = s.stats();
        expect(st.acceptedDraftTokens).toBeGreaterThan(0);
        expect(st.acceptedDraftTokens).toBeLessThan(st.draftedTokens); // some drafts were wrong, and rolled back
        expect(f.log.some((step) => step.filter((q) => q.tree > 0).length >= 2)).toBe(true); // drafts of several sequences in one step
        expect(f.pool.stats().used).toBe(0);
      });

      it('stops exactly where plain decoding stops: max_tokens, a stop from onToken, end-of-generation and an abort mid-draft', async () => {
        const q = req([3, 4, 5, 6, 3, 4, 5], 23, { isEog: () => false });
        const run = async (extra: Partial<SeqRequest>, speculative: boolean): Promise<SeqOutcome> => {
          const f = new FakeRunner(opts());
          f.repetitive = true;
          const s = new Scheduler(f);
          s.afterStep = () => s.checkInvariants();
          const o = await s.submit({ ...q, ...extra, ...(speculative ? { speculative: spec } : {}) });
          expect(f.pool.stats().used).toBe(0);
          if (speculative && o.tokens.length > 8) expect(s.stats().acceptedDraftTokens).toBeGreaterThan(0);
          return o;
        };
        for (const extra of [{}, { maxTokens: 9 }]) expect((await run(extra, true)).tokens).toEqual((await run(extra, false)).tokens);
        const full = (await run({}, false)).tokens;
        let seen = 0;
        const stopAt5 = (): Partial<SeqRequest> => ({ onToken: () => ++seen % 100 === 5 });
        seen = 0;
        const a = await run(stopAt5(), true);
        expect(a).toMatchObject({ finishReason: 'stop', tokens: full.slice(0, 5) });
        const eog = full[7]!;
        const b = await run({ isEog: (t) => t === eog }, true);
        expect(b.tokens).toEqual(full.slice(0, full.indexOf(eog)));
        const ac = new AbortController();
        let n = 0;
        const c = await run({ signal: ac.signal, onToken: () => void (++n === 6 && ac.abort()) }, true);
        expect(c.finishReason).toBe('abort');
        expect(c.tokens).toEqual(full.slice(0, c.tokens.length));
      });

      it('survives preemption on a small pool with the same output', async () => {
        const r = rng(12);
        const reqs = [0, 1, 2].map(() => req(seqTokens(r, 8), 20, { isEog: () => false }));
        const { s, f } = checked({ numBlocks: 12 });
        f.repetitive = true;
        const outs = await Promise.all(reqs.map((q) => s.submit({ ...q, speculative: spec })));
        expect(s.stats().preemptions).toBeGreaterThan(0);
        expect(s.stats().acceptedDraftTokens).toBeGreaterThan(0);
        for (const [i, q] of reqs.entries()) {
          const g = new FakeRunner(opts({ numBlocks: 256, maxSeqs: 1 }));
          g.repetitive = true;
          expect(outs[i]!.tokens).toEqual((await new Scheduler(g).submit(q)).tokens);
        }
      });
    });

  it('a sampled request speculates (lossless verifiers) unless it uses top-k or top-p', async () => {
    for (const [topK, topP, speculates] of [
      [0, 1, true],
      [40, 1, false],
      [0, 0.9, false],
    ] as const) {
      const { s, f } = checked();
      f.repetitive = true;
      const q = req([1, 2, 3, 1, 2, 3], 10, { isEog: () => false, sampling: { ...greedy, temperature: 0.7, topK, topP }, speculative: { draft: 'ngram' } });
      const plain = await new Scheduler(Object.assign(new FakeRunner(opts()), { repetitive: true })).submit({ ...q, speculative: undefined });
      expect((await s.submit(q)).tokens).toEqual(plain.tokens); // the fake target is deterministic given (seed, counter)
      expect(
        f.log.some((step) => step.some((x) => x.tree > 0)),
        `top_k ${topK} top_p ${topP}`,
      ).toBe(speculates);
    }
  });

  it("refuses 'self:N' outside 1 .. numLayers - 1 with BAD_REQUEST and the numbers", async () => {
    const { s } = checked();
    for (const draft of ['self:0', 'self:4'] as const)
      await expect(s.submit(req([1, 2], 4, { speculative: { draft } }))).rejects.toMatchObject({ code: 'BAD_REQUEST', details: { numLayers: 4 } });
  });
});

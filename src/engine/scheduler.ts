// The serving loop: continuous batching over a paged KV cache with prefix caching, chunked
// prefill and preemption by recomputation. Requests are submitted at any time; each step the
// loop plans one forward pass over every running sequence (decode tokens first, then prefill
// chunks, then newly admitted requests) under a token budget, runs it, and applies the sampled
// tokens. Pure TS over a StepExecutor (model/forward.ts ModelRunner, or a fake in tests).
//
// Invariants (checkInvariants() verifies them; the tests call it after every step):
// - every block a sequence holds is referenced once by it: pool refs = holders;
// - a running sequence's table covers its computed positions: blocks.length * blockSize >= computed;
// - sealed blocks hold exactly the tokens their hash names (hashes[i] is block i's chain hash);
// - a waiting sequence holds no blocks; a finished one holds none and is in no queue.
// See docs/ARCHITECTURE.md ("The step loop") for the lifecycle of a page.

import { EngineError } from '../api/errors.js';
import type { SampleRow, SamplingParams } from '../kernels/sample.js';
import { blockHash, type BlockPool } from '../kv/block-pool.js';
import type { StepResult, StepSeq } from '../model/forward.js';

/** What the loop needs from a model runner. */
export interface StepExecutor {
  readonly opts: { maxContext: number; maxBatch: number; maxSeqs: number; maxOutputs?: number; blockSize: number; numBlocks: number };
  readonly pool: BlockPool;
  run(seqs: readonly StepSeq[]): Promise<(StepResult | null)[]>;
}

/**
 * Speculative decoding (issue 7, first slice): `ngram` drafts up to `depth` tokens by prompt lookup
 * (the tokens that followed the latest earlier occurrence of the context's last 1..`ngram` tokens)
 * and the target verifies them in the same forward pass as its own next token. Greedy requests
 * only (temperature 0): the output is token for token the plain greedy output.
 */
export interface SpeculativeOptions {
  draft: 'ngram';
  /** Most drafted tokens per step (default 4). */
  depth?: number;
  /** Longest suffix looked up (default 3). */
  ngram?: number;
}

export interface SeqRequest {
  promptTokens: readonly number[];
  speculative?: SpeculativeOptions;
  /** Most tokens to generate (the loop also stops at maxContext). */
  maxTokens: number;
  sampling: SamplingParams;
  /** End-of-generation tokens: sampling one finishes the request with 'stop' (it is not returned). */
  isEog: (token: number) => boolean;
  /** Each generated token as it is sampled; returning true finishes the request with 'stop' (a stop string). */
  onToken?: (result: StepResult) => boolean | void;
  signal?: AbortSignal;
}

export type SeqFinish = 'stop' | 'length' | 'abort';

export interface SeqOutcome {
  tokens: number[];
  results: StepResult[];
  finishReason: SeqFinish;
  /** Prompt tokens whose KV came from the prefix cache on first admission. */
  cachedTokens: number;
  /** How often the request was preempted (its pages freed, recomputed later). */
  preemptions: number;
  /** ms from submit to the first generated token (or to the end, when none was). */
  firstTokenMs: number;
  totalMs: number;
}

export interface SchedulerStats {
  steps: number;
  running: number;
  waiting: number;
  preemptions: number;
  /** Prompt tokens served from the prefix cache, over all admissions. */
  prefixHitTokens: number;
  /** Most sequences in one step so far. */
  maxSeqsInStep: number;
  /** Speculative decoding: steps that verified drafts, drafted tokens, drafted tokens accepted. */
  verifySteps: number;
  draftedTokens: number;
  acceptedDraftTokens: number;
}

class Seq {
  /** Prompt then generated tokens. */
  readonly tokens: number[];
  readonly promptLen: number;
  /** Tokens whose KV is in the cache (positions 0 .. computed - 1). */
  computed = 0;
  blocks: number[] = [];
  /** Chain hashes of the sealed (full, registered or duplicate) blocks, block by block. */
  hashes: string[] = [];
  readonly results: StepResult[] = [];
  cachedTokens = -1;
  preemptions = 0;
  firstTokenAt = -1;
  done = false;
  readonly submittedAt = performance.now();
  constructor(
    readonly id: number,
    readonly req: SeqRequest,
    readonly maxTokens: number,
    readonly resolve: (o: SeqOutcome) => void,
    readonly reject: (e: unknown) => void,
  ) {
    this.tokens = [...req.promptTokens];
    this.promptLen = req.promptTokens.length;
  }
  get generated(): number {
    return this.tokens.length - this.promptLen;
  }
  /** Tokens still to feed before the next sample. */
  get pending(): number {
    return this.tokens.length - this.computed;
  }
}

interface Planned {
  seq: Seq;
  n: number;
  /** Drafted tokens fed after the pending one (speculative decoding). */
  draft?: number[];
}

/** Up to `k` tokens that followed the latest earlier occurrence of the last 1..maxN tokens (longest first). */
export function ngramDraft(tokens: readonly number[], k: number, maxN: number): number[] {
  const L = tokens.length;
  for (let n = Math.min(maxN, L - 1); n >= 1; n--) {
    for (let start = L - n - 1; start >= 0; start--) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = tokens[start + i] === tokens[L - n + i];
      if (!same) continue;
      const from = start + n;
      const out = tokens.slice(from, Math.min(from + k, L));
      if (out.length > 0) return out;
    }
  }
  return [];
}

export class Scheduler {
  private readonly waiting: Seq[] = [];
  /** Admission order: the newest is the first preemption victim. */
  private readonly running: Seq[] = [];
  private looping = false;
  private nextId = 0;
  private readonly counters = { steps: 0, preemptions: 0, prefixHitTokens: 0, maxSeqsInStep: 0, verifySteps: 0, draftedTokens: 0, acceptedDraftTokens: 0 };
  /** Called after every step (tests check invariants here). */
  afterStep: (() => void) | null = null;

  constructor(private readonly exec: StepExecutor) {}

  stats(): SchedulerStats {
    return { ...this.counters, running: this.running.length, waiting: this.waiting.length };
  }

  /** Blocks each live sequence holds (block → number of holders), for BlockPool.check(). */
  heldBlocks(): Map<number, number> {
    const held = new Map<number, number>();
    for (const s of [...this.running, ...this.waiting]) for (const b of s.blocks) held.set(b, (held.get(b) ?? 0) + 1);
    return held;
  }

  /** Verify the pool against what the sequences hold and each sequence's own bookkeeping. */
  checkInvariants(): void {
    this.exec.pool.check(this.heldBlocks());
    const bs = this.exec.opts.blockSize;
    for (const s of this.running) {
      if (s.blocks.length * bs < s.computed)
        throw new Error(`hearth internal error: sequence ${s.id} computed ${s.computed} tokens in ${s.blocks.length} blocks`);
      if (s.hashes.length > Math.floor(s.computed / bs)) throw new Error(`hearth internal error: sequence ${s.id} sealed a block it has not computed`);
    }
    for (const s of this.waiting) if (s.blocks.length > 0) throw new Error(`hearth internal error: waiting sequence ${s.id} holds blocks`);
  }

  /**
   * Why a request of `promptLen` tokens and up to `maxTokens` generated could never run, or null:
   * an empty prompt (BAD_REQUEST), one that fills the context (CONTEXT_OVERFLOW), or one whose KV
   * could outgrow the whole pool (OUT_OF_KV_BLOCKS), each with the numbers.
   */
  refusal(promptLen: number, maxTokens: number): EngineError | null {
    const { maxContext, blockSize, numBlocks } = this.exec.opts;
    const n = promptLen;
    if (n === 0) return new EngineError('BAD_REQUEST', 'The prompt is empty and the model adds no BOS token.');
    if (n >= maxContext)
      return new EngineError(
        'CONTEXT_OVERFLOW',
        `The prompt has ${n} tokens; the context holds ${maxContext}. Shorten the prompt or load with a larger maxContext.`,
        { promptTokens: n, maxContext },
      );
    if (!(maxTokens >= 0)) return new EngineError('BAD_REQUEST', `max_tokens must be >= 0 (got ${maxTokens}).`, { maxTokens });
    // The last generated token is never fed, so the sequence's KV peaks at n + maxTokens - 1.
    const peak = Math.max(n, n + Math.min(maxTokens, maxContext - n) - 1);
    const needBlocks = Math.ceil(peak / blockSize);
    if (needBlocks > numBlocks)
      return new EngineError(
        'OUT_OF_KV_BLOCKS',
        `The request needs up to ${needBlocks} KV blocks (${peak} tokens of ${blockSize}) but the pool has ${numBlocks}. Lower max_tokens or load with a larger kvCacheTokens.`,
        { needBlocks, numBlocks, blockSize, promptTokens: n, maxTokens },
      );
    return null;
  }

  /** Queue a request; it is admitted at the next step with room. Resolves when it finishes. */
  submit(req: SeqRequest): Promise<SeqOutcome> {
    const refused = this.refusal(req.promptTokens.length, req.maxTokens);
    if (refused) return Promise.reject(refused);
    const maxTokens = Math.min(req.maxTokens, this.exec.opts.maxContext - req.promptTokens.length);
    return new Promise<SeqOutcome>((resolve, reject) => {
      const seq = new Seq(this.nextId++, req, maxTokens, resolve, reject);
      if (maxTokens === 0) {
        this.finish(seq, 'length');
        return;
      }
      this.waiting.push(seq);
      this.kick();
    });
  }

  /** Start the loop if idle, after the current task's synchronous work: requests submitted together start in one step. */
  private kick(): void {
    if (this.looping) return;
    this.looping = true;
    queueMicrotask(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        this.dropAborted();
        if (this.running.length === 0 && this.waiting.length === 0) break;
        const plan = this.schedule();
        if (plan.length === 0) {
          // Nothing runs and the head of the queue cannot get blocks: someone outside the loop
          // (a SoloSequence) holds the pool. Fail the head rather than spin.
          const head = this.waiting.shift()!;
          this.fail(
            head,
            new EngineError('OUT_OF_KV_BLOCKS', `No KV block is free for the request (${this.exec.pool.available} available of ${this.exec.opts.numBlocks}).`, {
              available: this.exec.pool.available,
              numBlocks: this.exec.opts.numBlocks,
            }),
          );
          continue;
        }
        const results = await this.exec.run(
          plan.map(({ seq, n, draft }): StepSeq => {
            if (draft)
              return {
                blocks: seq.blocks,
                tokens: [...seq.tokens.slice(seq.computed), ...draft],
                startPos: seq.computed,
                sample: { sampling: seq.req.sampling, counter: seq.generated },
                verify: draft.length,
              };
            const last = seq.computed + n === seq.tokens.length;
            const sample: SampleRow | undefined = last ? { sampling: seq.req.sampling, counter: seq.generated } : undefined;
            return { blocks: seq.blocks, tokens: seq.tokens.slice(seq.computed, seq.computed + n), startPos: seq.computed, ...(sample ? { sample } : {}) };
          }),
        );
        this.counters.steps++;
        this.counters.maxSeqsInStep = Math.max(this.counters.maxSeqsInStep, plan.length);
        plan.forEach((p, i) => this.apply(p, results[i] ?? null));
        this.afterStep?.();
      }
    } catch (e) {
      for (const s of [...this.running, ...this.waiting]) this.fail(s, e);
    } finally {
      this.looping = false;
    }
    // A request submitted while the loop was unwinding.
    if (this.running.length > 0 || this.waiting.length > 0) this.kick();
  }

  private dropAborted(): void {
    for (const s of [...this.running, ...this.waiting]) if (s.req.signal?.aborted) this.finish(s, 'abort');
  }

  /** The next step: decodes, then running prefills, then admissions, under the token and sequence budgets. */
  private schedule(): Planned[] {
    const { maxBatch, maxSeqs } = this.exec.opts;
    const plan: Planned[] = [];
    let budget = maxBatch;
    const planned = new Set<Seq>();
    const decodes = this.running.filter((s) => s.pending === 1);
    const prefills = this.running.filter((s) => s.pending > 1);
    let outputs = 0;
    const maxOutputs = this.exec.opts.maxOutputs ?? maxSeqs;
    for (const seq of [...decodes, ...prefills]) {
      if (budget === 0 || plan.length === maxSeqs) break;
      if (!this.running.includes(seq)) continue; // preempted for an older sequence this step
      let n = Math.min(seq.pending, budget);
      // Drafts ride along with a decode, within the token and output budgets; never past max_tokens or the context.
      const draft = seq.pending === 1 ? this.draftFor(seq, Math.min(budget - 1, maxOutputs - outputs - (maxSeqs - plan.length))) : [];
      if (draft.length > 0) n = 1 + draft.length;
      if (!this.grow(seq, seq.computed + n, planned)) continue; // it was itself preempted
      plan.push(draft.length > 0 ? { seq, n, draft } : { seq, n });
      planned.add(seq);
      budget -= n;
      outputs += draft.length + 1;
    }
    while (budget > 0 && plan.length < maxSeqs && this.running.length < maxSeqs && this.waiting.length > 0) {
      const seq = this.waiting[0]!;
      if (!this.admit(seq, budget)) break; // first come, first served: nobody overtakes the head
      this.waiting.shift();
      this.running.push(seq);
      const n = Math.min(seq.pending, budget);
      plan.push({ seq, n });
      planned.add(seq);
      budget -= n;
    }
    return plan;
  }

  /**
   * Make `seq`'s table cover positions up to `end`, preempting the newest running sequences not
   * yet planned this step when the pool is empty (the sequence itself last). False when `seq`
   * was preempted.
   */
  private grow(seq: Seq, end: number, planned: Set<Seq>): boolean {
    const bs = this.exec.opts.blockSize;
    while (seq.blocks.length * bs < end) {
      const b = this.exec.pool.allocate();
      if (b !== null) {
        seq.blocks.push(b);
        continue;
      }
      const victim = [...this.running].reverse().find((s) => s !== seq && !planned.has(s)) ?? seq;
      this.preempt(victim);
      if (victim === seq) return false;
    }
    return true;
  }

  /** The tokens to draft for a decoding sequence (empty when it does not speculate or has no room). */
  private draftFor(seq: Seq, room: number): number[] {
    const spec = seq.req.speculative;
    if (!spec || seq.req.sampling.temperature > 0) return [];
    const k = Math.min(spec.depth ?? 4, room, seq.maxTokens - seq.generated - 1, this.exec.opts.maxContext - seq.tokens.length);
    if (k <= 0) return [];
    return ngramDraft(seq.tokens, k, spec.ngram ?? 3);
  }

  /** Take the prefix cache's blocks for `seq` and blocks for its first chunk, if the pool has room for its whole prompt now. */
  private admit(seq: Seq, budget: number): boolean {
    const pool = this.exec.pool;
    const bs = this.exec.opts.blockSize;
    // Full blocks of known tokens, leaving at least one token to compute (its logits are needed).
    const matchable = Math.floor((seq.tokens.length - 1) / bs);
    let parent = '';
    const hits: { block: number; hash: string }[] = [];
    for (let i = 0; i < matchable; i++) {
      const h = blockHash(parent, seq.tokens, i * bs, (i + 1) * bs);
      const b = pool.lookup(h);
      if (b === null) break;
      hits.push({ block: b, hash: h });
      parent = h;
    }
    for (const { block } of hits) pool.retain(block);
    const computed = hits.length * bs;
    // Room for everything still to prefill plus the first decode, so admission does not preempt.
    const needed = Math.ceil((seq.tokens.length + 1) / bs) - hits.length;
    if (pool.available < needed) {
      for (const { block } of hits.reverse()) pool.release(block);
      return false;
    }
    seq.blocks = hits.map((h) => h.block);
    seq.hashes = hits.map((h) => h.hash);
    seq.computed = computed;
    if (seq.cachedTokens < 0) seq.cachedTokens = computed;
    this.counters.prefixHitTokens += computed;
    const n = Math.min(seq.pending, budget);
    while (seq.blocks.length * bs < computed + n) seq.blocks.push(pool.allocate()!);
    return true;
  }

  /** Free the victim's pages (recompute later) and put it at the head of the queue. */
  private preempt(seq: Seq): void {
    this.releaseBlocks(seq);
    seq.computed = 0;
    seq.preemptions++;
    this.counters.preemptions++;
    this.running.splice(this.running.indexOf(seq), 1);
    this.waiting.unshift(seq);
  }

  private releaseBlocks(seq: Seq): void {
    // Tail first: the LRU then evicts a sequence's last blocks before its prefix.
    for (const b of seq.blocks.reverse()) this.exec.pool.release(b);
    seq.blocks = [];
    seq.hashes = [];
  }

  /**
   * After a step: the fed tokens are computed, full blocks are sealed, a sampled token is appended
   * or ends the request. With drafts, the target's samples after each fed token are compared with
   * the drafts: the longest agreeing prefix is accepted (its KV stays; the rest is overwritten
   * later, as positions past `computed`), and the target's own next token follows it.
   */
  private apply({ seq, n, draft }: Planned, r: StepResult | null): void {
    if (seq.done) return;
    if (draft && r) {
      const chain = r.chain ?? [r];
      let a = 0;
      while (a < draft.length && chain[a]!.token === draft[a]) a++;
      this.counters.verifySteps++;
      this.counters.draftedTokens += draft.length;
      this.counters.acceptedDraftTokens += a;
      seq.computed += 1 + a;
      this.seal(seq);
      for (let i = 0; i <= a && !seq.done; i++) this.take(seq, chain[i]!);
      return;
    }
    seq.computed += n;
    this.seal(seq);
    if (r !== null) this.take(seq, r);
  }

  /** One sampled token: end-of-generation, appended (onToken may stop), or max_tokens reached. */
  private take(seq: Seq, r: StepResult): void {
    if (seq.firstTokenAt < 0) seq.firstTokenAt = performance.now();
    if (seq.req.isEog(r.token)) return this.finish(seq, 'stop');
    seq.tokens.push(r.token);
    seq.results.push(r);
    let stop: boolean | void = false;
    try {
      stop = seq.req.onToken?.(r);
    } catch (e) {
      return this.fail(seq, e);
    }
    if (stop === true) return this.finish(seq, 'stop');
    if (seq.generated >= seq.maxTokens) return this.finish(seq, 'length');
  }

  private seal(seq: Seq): void {
    const bs = this.exec.opts.blockSize;
    while ((seq.hashes.length + 1) * bs <= seq.computed) {
      const i = seq.hashes.length;
      const h = blockHash(i === 0 ? '' : seq.hashes[i - 1]!, seq.tokens, i * bs, (i + 1) * bs);
      this.exec.pool.seal(seq.blocks[i]!, h);
      seq.hashes.push(h);
    }
  }

  private remove(seq: Seq): void {
    seq.done = true;
    this.releaseBlocks(seq);
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
  }

  private finish(seq: Seq, reason: SeqFinish): void {
    this.remove(seq);
    const now = performance.now();
    seq.resolve({
      tokens: seq.tokens.slice(seq.promptLen),
      results: seq.results,
      finishReason: reason,
      cachedTokens: Math.max(0, seq.cachedTokens),
      preemptions: seq.preemptions,
      firstTokenMs: (seq.firstTokenAt >= 0 ? seq.firstTokenAt : now) - seq.submittedAt,
      totalMs: now - seq.submittedAt,
    });
  }

  private fail(seq: Seq, e: unknown): void {
    this.remove(seq);
    seq.reject(e);
  }
}

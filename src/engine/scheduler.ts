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
import type { DraftedTree, DraftJob, StepResult, StepSeq } from '../model/forward.js';
import { fullTree, fullTreeNodes, MAX_TREE_DEPTH, MAX_TREE_NODES, treeFromPaths, type TreeShape } from '../spec/tree.js';
import { NO_ROW, type VerifyMethod } from '../spec/verify.js';

/** What the loop needs from a model runner. */
export interface StepExecutor {
  readonly opts: { maxContext: number; maxBatch: number; maxSeqs: number; maxOutputs?: number; blockSize: number; numBlocks: number };
  readonly pool: BlockPool;
  run(seqs: readonly StepSeq[]): Promise<(StepResult | null)[]>;
  /** Transformer blocks of the model (a self-draft uses fewer). */
  readonly numLayers?: number;
  /** Draft token trees with the model's first `layers` blocks or the attached draft model (ModelRunner.draftTrees); absent: no model drafts. */
  draftTrees?(jobs: readonly DraftJob[], drafter: number | 'model'): Promise<DraftedTree[]>;
  /** Whether a draft model is attached (draft 'model'). */
  readonly hasDraftModel?: boolean;
}

/**
 * Speculative decoding (issue 7; src/spec/). Each decode step of the request feeds a token tree
 * drafted after its last token, and the target verifies the whole tree in the same forward pass as
 * its own next token (tree attention mask), on the GPU (src/spec/verify.ts): the accepted path's
 * tokens and one more from the target come back, and the accepted KV is moved into place.
 * - draft 'ngram': prompt lookup, the tokens that followed earlier occurrences of the context's
 *   last 1..`ngram` tokens (up to `tree.width` different continuations, as branches).
 * - draft 'self:N': the target's own first N blocks and its head (no extra model).
 * - draft 'model': the draft model loaded beside the target (LoadOptions.draft; same vocabulary),
 *   which catches up on the context it has not seen before each draft.
 * Greedy requests are verified by argmax match (output token for token the plain greedy output);
 * sampled ones by `method` (lossless: the output is distributed as plain sampling). Requests with
 * top-k / top-p do not speculate when sampled.
 */
export interface SpeculativeOptions {
  draft: 'ngram' | `self:${number}` | 'model';
  /** Children per node and levels (default width 1, depth 4: a chain). Nodes are capped at 32, depth at 8. */
  tree?: { width?: number; depth?: number };
  /** Shorthand for tree.depth. */
  depth?: number;
  /** Sampled requests' verifier (default 'spechub' for width 2, else 'rrs-wo'); 'greedy' speculates only at temperature 0. */
  method?: VerifyMethod;
  /** Temperature of a model draft's distribution (default: the request's). */
  draftTemperature?: number;
  /** ngram: longest suffix looked up (default 3). */
  ngram?: number;
}

/** The self-draft's block count in `draft` ('self:N'), or null for another drafter. */
export function selfDraftLayers(draft: string): number | null {
  const m = /^self:(\d+)$/.exec(draft);
  return m ? Number(m[1]) : null;
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
  /** Positions whose KV the draft model has computed (draft 'model'; <= computed). */
  draftComputed = 0;
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

/** A speculative step's tree for one sequence: its shape and nodes' tokens (root: the pending token). */
interface TreePlan {
  shape: TreeShape;
  tokens: number[];
  /** Per node its draft-logits row (model drafts, filled after drafting), else NO_ROW (deterministic drafts). */
  qRows: number[];
  method: VerifyMethod;
  draftTemperature: number;
  /** Self-draft blocks or the draft model; absent: the tokens are already drafted (n-gram). */
  drafter?: number | 'model';
}

interface Planned {
  seq: Seq;
  n: number;
  tree?: TreePlan;
}

/**
 * Up to `width` prompt-lookup continuations of up to `k` tokens with different first tokens: the
 * longest suffix first, the latest occurrence first.
 */
export function ngramPaths(tokens: readonly number[], width: number, k: number, maxN: number): number[][] {
  const L = tokens.length;
  const out: number[][] = [];
  const firsts = new Set<number>();
  for (let n = Math.min(maxN, L - 1); n >= 1 && out.length < width; n--) {
    for (let start = L - n - 1; start >= 0 && out.length < width; start--) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = tokens[start + i] === tokens[L - n + i];
      if (!same) continue;
      const from = start + n;
      const cont = tokens.slice(from, Math.min(from + k, L));
      if (cont.length === 0 || firsts.has(cont[0]!)) continue;
      firsts.add(cont[0]!);
      out.push(cont);
    }
  }
  return out;
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

  /** Why a speculative setting cannot run on this executor (a self-draft needs 1 .. numLayers - 1 blocks), or null. */
  private specRefusal(spec: SpeculativeOptions | undefined): EngineError | null {
    if (spec?.draft === 'model' && !this.exec.hasDraftModel)
      return new EngineError('BAD_REQUEST', "speculative.draft 'model' needs a draft model loaded with the target (load option `draft`).");
    const layers = spec ? selfDraftLayers(spec.draft) : null;
    if (layers === null) return null;
    const total = this.exec.numLayers ?? 0;
    if (!this.exec.draftTrees || !(layers >= 1 && layers < total))
      return new EngineError('BAD_REQUEST', `speculative.draft 'self:${layers}' needs 1 to ${total - 1} of the model's ${total} blocks.`, {
        layers,
        numLayers: total,
      });
    return null;
  }

  /** Queue a request; it is admitted at the next step with room. Resolves when it finishes. */
  submit(req: SeqRequest): Promise<SeqOutcome> {
    const refused = this.refusal(req.promptTokens.length, req.maxTokens) ?? this.specRefusal(req.speculative);
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
        await this.draft(plan);
        const results = await this.exec.run(
          plan.map(({ seq, n, tree }): StepSeq => {
            const sampleRow = { sampling: seq.req.sampling, counter: seq.generated };
            if (tree)
              return {
                blocks: seq.blocks,
                tokens: tree.tokens,
                startPos: seq.computed,
                tree: { shape: tree.shape, first: 0 },
                sample: sampleRow,
                spec: { method: tree.method, qRows: tree.qRows, draftTemperature: tree.draftTemperature },
              };
            const last = seq.computed + n === seq.tokens.length;
            const sample: SampleRow | undefined = last ? sampleRow : undefined;
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
      // A draft tree rides along with a decode, within the token and output budgets (room for one
      // output per sequence still to plan); never past max_tokens or the context.
      const tree = seq.pending === 1 ? this.planTree(seq, Math.min(budget - 1, maxOutputs - outputs - (maxSeqs - plan.length))) : null;
      if (tree) n = tree.tokens.length;
      if (!this.grow(seq, seq.computed + n, planned)) continue; // it was itself preempted
      plan.push(tree ? { seq, n, tree } : { seq, n });
      planned.add(seq);
      budget -= n;
      outputs += tree ? n : 1;
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

  /**
   * The draft tree for a decoding sequence with at most `room` drafted nodes, or null (it does not
   * speculate, cannot this step, or nothing was drafted).
   */
  private planTree(seq: Seq, room: number): TreePlan | null {
    const spec = seq.req.speculative;
    if (!spec) return null;
    const s = seq.req.sampling;
    const width = spec.tree?.width ?? 1;
    const sampled = s.temperature > 0;
    const method: VerifyMethod = sampled ? (spec.method ?? (width === 2 ? 'spechub' : 'rrs-wo')) : 'greedy';
    // The verifier samples from softmax(logits / T) only: top-k / top-p requests decode plainly.
    if (sampled && (method === 'greedy' || s.topK > 0 || (s.topP > 0 && s.topP < 1))) return null;
    const depth = Math.min(spec.tree?.depth ?? spec.depth ?? 4, MAX_TREE_DEPTH, seq.maxTokens - seq.generated - 1);
    // Slots: the tree's nodes sit at computed .. computed + nodes - 1 < maxContext.
    const maxNodes = Math.min(MAX_TREE_NODES, room + 1, this.exec.opts.maxContext - seq.computed);
    if (depth < 1 || maxNodes < 2) return null;
    const root = seq.tokens[seq.tokens.length - 1]!;
    const draftTemperature = spec.draftTemperature ?? s.temperature;
    const drafter = spec.draft === 'model' ? 'model' : selfDraftLayers(spec.draft);
    if (drafter === null) {
      const { shape, tokens } = treeFromPaths(root, ngramPaths(seq.tokens, width, depth, spec.ngram ?? 3), maxNodes);
      if (tokens.length < 2) return null;
      return { shape, tokens, qRows: tokens.map(() => NO_ROW), method, draftTemperature };
    }
    // The deepest full tree that fits.
    let d = depth;
    while (d >= 1 && fullTreeNodes(width, d) > maxNodes) d--;
    if (d < 1) return null;
    const shape = fullTree(width, d);
    return { shape, tokens: shape.parents.map((_, i) => (i === 0 ? root : 0)), qRows: [], method, draftTemperature, drafter };
  }

  /** Draft the planned model trees (grouped by drafter), filling their tokens and draft rows. */
  private async draft(plan: readonly Planned[]): Promise<void> {
    const groups = new Map<number | 'model', Planned[]>();
    for (const p of plan) if (p.tree?.drafter !== undefined) groups.set(p.tree.drafter, [...(groups.get(p.tree.drafter) ?? []), p]);
    for (const [drafter, group] of groups) {
      if (!this.exec.draftTrees) throw new Error('hearth internal error: this executor cannot draft');
      const drafted = await this.exec.draftTrees(
        group.map(({ seq, tree }) => ({
          blocks: seq.blocks,
          // A draft model has its own KV: it catches up on positions it has not computed.
          ...(drafter === 'model' ? { catchUp: { from: seq.draftComputed, tokens: seq.tokens.slice(seq.draftComputed, seq.computed) } } : {}),
          startPos: seq.computed,
          root: tree!.tokens[0]!,
          shape: tree!.shape,
          method: tree!.method,
          temperature: seq.req.sampling.temperature,
          draftTemperature: tree!.draftTemperature,
          seed: seq.req.sampling.seed,
          counter: seq.generated,
        })),
        drafter,
      );
      group.forEach(({ seq, tree }, i) => {
        tree!.tokens = drafted[i]!.tokens;
        tree!.qRows = drafted[i]!.qRows;
        // The draft computed everything up to the root; the tree's other slots are rewritten later.
        if (drafter === 'model') seq.draftComputed = seq.computed + 1;
      });
    }
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
    seq.draftComputed = 0;
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
   * or ends the request. With a draft tree, the verifier's accepted path (its KV already moved to
   * the slots after the root on the GPU; the rest is overwritten later, as positions past
   * `computed`) and the target's own next token are taken in order.
   */
  private apply({ seq, n, tree }: Planned, r: StepResult | null): void {
    if (seq.done) return;
    if (tree && r) {
      const chain = r.chain ?? [r];
      const a = r.accepted ?? 0;
      this.counters.verifySteps++;
      this.counters.draftedTokens += tree.tokens.length - 1;
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

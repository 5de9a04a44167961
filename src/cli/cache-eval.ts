// `hearth cache eval`: hit rate and precision of the semantic cache on a labeled set (issue 6).
// Each line of the set is {"query", "intent"[, "kind"]}; in order, each query is looked up in a fresh
// in-memory cache under one fixed key; a hit is correct when the stored intent equals the line's, a
// miss inserts (query → intent). A sweep reruns that walk per threshold over vectors embedded once.

import { readFile } from 'node:fs/promises';
import { EngineError } from '../api/errors.js';
import type { Embedder } from '../cache/embedder.js';
import { LexicalEmbedder } from '../cache/lexical.js';
import { describeAdapter } from '../gpu/device.js';
import { acquireNodeDevice } from '../gpu/device-node.js';
import { loadEmbeddingModel } from '../model/bert.js';
import { fileSource } from '../model/file-source-node.js';
import type { Args } from './args.js';
import { MemoryStore } from '../cache/store.js';
import { defaultThreshold, SemanticCache, type CacheKey } from '../cache/semantic-cache.js';

export interface EvalLine {
  query: string;
  intent: string;
  /** Why the line is in the set (bench/cache-data: anchor, near_miss, trivial, paraphrase); only used to break results down. */
  kind?: string;
}

export interface KindCounts {
  lookups: number;
  hits: number;
  correct_hits: number;
}

export interface WrongHit {
  line: number;
  query: string;
  intent: string;
  stored_query: string;
  stored_intent: string;
  similarity: number;
}

export interface EvalResult {
  lookups: number;
  hits: number;
  correct_hits: number;
  hit_rate: number;
  /** correct_hits / hits; null when nothing hit (precision is undefined then, and JSON has no NaN). */
  precision: number | null;
  threshold: number;
  embedder: string;
  /** Counts per line kind, when the set labels kinds. */
  by_kind?: Record<string, KindCounts>;
  /** Every incorrect hit, in order (only with `details`). */
  wrong_hits?: WrongHit[];
}

/** Parses a JSONL labeled set. Blank lines are skipped; anything else that is not {"query": string, "intent": string} is BAD_REQUEST. */
export function parseEvalSet(text: string, source = 'the data'): EvalLine[] {
  const out: EvalLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (!raw) continue;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      throw new EngineError('BAD_REQUEST', `${source} line ${i + 1} is not JSON (${e instanceof Error ? e.message : String(e)}).`, { line: i + 1 });
    }
    const o = v as Partial<Record<string, unknown>> | null;
    if (typeof o !== 'object' || o === null || typeof o.query !== 'string' || typeof o.intent !== 'string' || !o.query || !o.intent)
      throw new EngineError('BAD_REQUEST', `${source} line ${i + 1} must be {"query": "...", "intent": "..."} with non-empty strings.`, { line: i + 1 });
    out.push({ query: o.query, intent: o.intent, ...(typeof o.kind === 'string' ? { kind: o.kind } : {}) });
  }
  if (out.length === 0) throw new EngineError('BAD_REQUEST', `${source} has no queries.`);
  return out;
}

/**
 * Parses a threshold sweep: "from:to:step" (inclusive, e.g. "0.5:0.95:0.05") or a comma list ("0.7,0.8,0.9").
 * Every threshold must lie in [0, 1].
 */
export function parseSweep(spec: string): number[] {
  const bad = (why: string): EngineError =>
    new EngineError('BAD_REQUEST', `--sweep '${spec}': ${why}. Use from:to:step (e.g. 0.5:0.95:0.05) or a list (0.7,0.8,0.9).`, { sweep: spec });
  let ts: number[];
  if (spec.includes(':')) {
    const parts = spec.split(':').map(Number);
    if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x))) throw bad('expected three numbers');
    const [from, to, step] = parts as [number, number, number];
    if (step <= 0 || to < from) throw bad('step must be > 0 and to ≥ from');
    const n = Math.floor((to - from) / step + 1e-9);
    if (n > 1000) throw bad('more than 1000 thresholds');
    ts = [];
    for (let i = 0; i <= n; i++) ts.push(Math.round((from + i * step) * 1e6) / 1e6);
  } else {
    ts = spec.split(',').map((s) => Number(s.trim()));
    if (ts.some((x) => !Number.isFinite(x))) throw bad('not a list of numbers');
  }
  if (ts.some((t) => t < 0 || t > 1)) throw bad('thresholds must lie in [0, 1]');
  return ts;
}

/** An embedder that embeds each distinct text once and serves copies after: a sweep embeds the set once. */
export class MemoEmbedder implements Embedder {
  readonly id: string;
  readonly dim: number;
  private readonly memo = new Map<string, Float32Array>();

  constructor(private readonly inner: Embedder) {
    this.id = inner.id;
    this.dim = inner.dim;
  }

  /** Embeds every text not yet seen, `batch` at a time. */
  async prefetch(texts: readonly string[], batch = 32): Promise<void> {
    const todo = [...new Set(texts.filter((t) => !this.memo.has(t)))];
    for (let i = 0; i < todo.length; i += batch) {
      const part = todo.slice(i, i + batch);
      const vecs = await this.inner.embed(part);
      part.forEach((t, j) => this.memo.set(t, vecs[j]!));
    }
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    await this.prefetch(texts);
    return texts.map((t) => new Float32Array(this.memo.get(t)!));
  }
}

/** The one key every line of an eval is stored and looked up under. */
export const EVAL_KEY: CacheKey = { model: 'hearth-cache-eval', context: 'hearth-cache-eval', sampling: 'greedy' };

/** Walks `lines` once against a fresh in-memory cache at `threshold`. */
export async function evaluateCache(lines: readonly EvalLine[], embedder: Embedder, threshold: number, opts: { details?: boolean } = {}): Promise<EvalResult> {
  const cache = await SemanticCache.create({ embedder, store: new MemoryStore(), threshold, ttlMs: Infinity });
  let hits = 0;
  let correct = 0;
  const byKind: Record<string, KindCounts> = {};
  const wrong: WrongHit[] = [];
  for (let i = 0; i < lines.length; i++) {
    const { query, intent, kind } = lines[i]!;
    const k = kind !== undefined ? (byKind[kind] ??= { lookups: 0, hits: 0, correct_hits: 0 }) : undefined;
    if (k) k.lookups++;
    const r = await cache.lookup<string>(EVAL_KEY, query); // the response stored for a query is its intent
    if (r) {
      hits++;
      if (k) k.hits++;
      const stored = r.entry.response;
      if (stored === intent) {
        correct++;
        if (k) k.correct_hits++;
      } else if (opts.details) wrong.push({ line: i + 1, query, intent, stored_query: r.entry.query, stored_intent: stored, similarity: r.similarity });
    } else await cache.insert(EVAL_KEY, query, intent);
  }
  return {
    lookups: lines.length,
    hits,
    correct_hits: correct,
    hit_rate: hits / lines.length,
    precision: hits > 0 ? correct / hits : null,
    threshold,
    embedder: embedder.id,
    ...(Object.keys(byKind).length > 0 ? { by_kind: byKind } : {}),
    ...(opts.details ? { wrong_hits: wrong } : {}),
  };
}

/** Runs the eval at each threshold, embedding every query once. */
export async function sweepCache(
  lines: readonly EvalLine[],
  embedder: Embedder,
  thresholds: readonly number[],
  opts: { details?: boolean } = {},
): Promise<EvalResult[]> {
  const memo = new MemoEmbedder(embedder);
  await memo.prefetch(lines.map((l) => l.query));
  const out: EvalResult[] = [];
  for (const t of thresholds) out.push(await evaluateCache(lines, memo, t, opts));
  return out;
}

/** The calibrated default threshold for the embedder (DEFAULT_THRESHOLDS); BAD_REQUEST when it has none. */
export function evalThreshold(embedder: Embedder): number {
  const t = defaultThreshold(embedder.id);
  if (t === undefined)
    throw new EngineError('BAD_REQUEST', `Embedder ${embedder.id} has no calibrated default threshold; pass --threshold T, or --sweep to calibrate one.`, {
      embedder: embedder.id,
    });
  return t;
}

/**
 * An embedder from the --embedder spec: 'lexical' (default) or 'model:PATH.gguf' (a BERT-architecture
 * sentence-embedding GGUF on this machine's WebGPU device). close() releases the model and its file.
 */
export async function openEmbedder(spec: string, opts: { robust?: boolean } = {}): Promise<{ embedder: Embedder; close: () => Promise<void> }> {
  if (spec === 'lexical') return { embedder: new LexicalEmbedder(), close: () => Promise.resolve() };
  if (!spec.startsWith('model:') || spec.length === 'model:'.length)
    throw new EngineError('BAD_REQUEST', `--embedder must be 'lexical' or 'model:PATH.gguf' (got '${spec}').`, { embedder: spec });
  const path = spec.slice('model:'.length);
  let src: Awaited<ReturnType<typeof fileSource>>;
  try {
    src = await fileSource(path);
  } catch (e) {
    throw new EngineError('BAD_REQUEST', `Cannot open the embedding model ${path} (${e instanceof Error ? e.message : String(e)}).`, { path });
  }
  try {
    const ctx = await acquireNodeDevice({ robustness: opts.robust ?? false });
    process.stderr.write(`hearth: adapter ${describeAdapter(ctx.adapter)}\n`);
    const model = await loadEmbeddingModel(ctx, src);
    return {
      embedder: model,
      close: async () => {
        model.destroy();
        await src.close?.();
      },
    };
  } catch (e) {
    await src.close?.();
    throw e;
  }
}

/** `hearth cache eval …`: one EvalResult, or `{ sweep: EvalResult[] }` with --sweep. */
export async function cacheCommand(args: Args): Promise<object> {
  const sub = args.positional[1];
  if (sub !== 'eval') throw new EngineError('BAD_REQUEST', `Unknown cache command '${sub ?? ''}': the one there is is 'hearth cache eval --data F.jsonl'.`);
  const path = args.need('data');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new EngineError('BAD_REQUEST', `Cannot read --data ${path} (${e instanceof Error ? e.message : String(e)}).`, { path });
  }
  const lines = parseEvalSet(text, path);
  const sweep = args.str('sweep');
  const threshold = args.num('threshold');
  if (sweep !== undefined && threshold !== undefined) throw new EngineError('BAD_REQUEST', 'Give --threshold or --sweep, not both.');
  if (threshold !== undefined && (threshold < 0 || threshold > 1))
    throw new EngineError('BAD_REQUEST', `--threshold must lie in [0, 1] (got ${threshold}).`, { threshold });
  const details = args.bool('details');
  const { embedder, close } = await openEmbedder(args.str('embedder') ?? 'lexical', { robust: args.bool('robust') });
  try {
    if (sweep !== undefined) return { sweep: await sweepCache(lines, embedder, parseSweep(sweep), { details }) };
    return await evaluateCache(lines, embedder, threshold ?? evalThreshold(embedder), { details });
  } finally {
    await close();
  }
}

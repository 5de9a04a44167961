// llama.cpp (node-llama-cpp, CPU, one thread) as the independent oracle: greedy continuations
// with the full next-token distribution at every step. One Llama instance per test process.

import { getLlama, type Llama } from 'node-llama-cpp';

let llamaP: Promise<Llama> | null = null;
export function llama(): Promise<Llama> {
  llamaP ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
  return llamaP;
}

export interface OracleRun {
  /** Greedy tokens after the prompt. */
  tokens: number[];
  /** probs[i]: next-token distribution before tokens[i], as a dense array over the vocabulary. */
  probs: Float64Array[];
}

export async function llamaGreedy(modelPath: string, prompt: number[], steps: number, vocabSize: number): Promise<OracleRun> {
  const l = await llama();
  const model = await l.loadModel({ modelPath, gpuLayers: 0 });
  // hearth keeps K/V in f32 and attends in f32. llama.cpp's defaults (f16 KV cache, and flash
  // attention, which also rounds Q to f16) move the distribution by TV ~1e-3 on their own; with an
  // f32 cache and flash attention off it agrees with the exact float64 reference to ~1e-6.
  const ctx = await model.createContext({
    flashAttention: false,
    contextSize: Math.max(128, prompt.length + steps + 8),
    threads: 1,
    batchSize: 512,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  try {
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    const probs: Float64Array[] = [];
    const it = seq.evaluateWithMetadata(prompt as never, { probabilities: true }, { temperature: 0 });
    for await (const out of it) {
      const dense = new Float64Array(vocabSize);
      for (const [tok, p] of out.probabilities) dense[tok as number] = p;
      probs.push(dense);
      tokens.push(out.token as number);
      if (tokens.length >= steps) break;
    }
    return { tokens, probs };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i]!);
  const out = new Float64Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i]! - mx);
    s += out[i]!;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= s;
  return out;
}

/** Total variation distance between two distributions over the same support. */
export function totalVariation(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += Math.abs(p[i]! - (q[i] ?? 0));
  return s / 2;
}

export interface OracleJob {
  modelPath: string;
  prompt: number[];
  steps: number;
  vocabSize: number;
}

/**
 * Run a node-llama-cpp script (path relative to this file) in a child process with `input` as JSON
 * on stdin, and parse its stdout as JSON. A child process, because node-llama-cpp and Dawn abort
 * when loaded in one process (see llama-cpp-cli.ts).
 */
export async function runLlamaChild<T>(script: string, input: unknown, what: string): Promise<T> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url))], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(JSON.stringify(input));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`${what} failed (${code}): ${Buffer.concat(err).toString()}`);
  return JSON.parse(Buffer.concat(out).toString('utf8')) as T;
}

/** Run llama.cpp jobs in a child process. */
export async function oracle(jobs: OracleJob[]): Promise<OracleRun[]> {
  const parsed = await runLlamaChild<{ tokens: number[]; probs: number[][] }[]>('./llama-cpp-cli.ts', jobs, 'llama.cpp oracle');
  return parsed.map((r) => ({ tokens: r.tokens, probs: r.probs.map((p) => Float64Array.from(p)) }));
}

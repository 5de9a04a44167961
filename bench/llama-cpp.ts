// llama.cpp (node-llama-cpp) as the native peer: prefill and decode tokens/s on the benchmark
// models, on the CPU or, where a GPU is there (bench/gpu.ts), through its CUDA or Vulkan build. It runs in a child process (bench/llama-cpp-child.ts): node-llama-cpp and Dawn abort in one process.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface LlamaCppJob {
  modelPath: string;
  /** Prompt token ids (the same ids hearth's benchmark feeds), evaluated as one batch. */
  promptTokens: number[];
  /** Greedy tokens generated after the prompt, end-of-generation ignored. */
  decodeTokens: number;
  threads: number;
  /** Text tokenized by llama.cpp without BOS, for the tokenizer cross-check. */
  checkText?: string;
  /** llama.cpp's GPU backend, every layer offloaded; absent: the CPU. */
  gpu?: 'cuda' | 'vulkan';
  /**
   * Batched decode instead: for each S here, S sequences (prompt i of batchPrompts, each prefilled
   * first) decode decodeTokens tokens together, one llama_decode of S tokens a step (node-llama-cpp
   * batches the sequences' pending tokens). promptTokens is then unused.
   */
  batchSequences?: number[];
  batchPrompts?: number[][];
}

export interface LlamaCppBatchRow {
  sequences: number;
  /** Median wall time of a step in which every sequence decodes one token. */
  median_step_ms: number;
  /** The fastest such step. */
  min_step_ms: number;
}

/** A job with batchSequences: its rows, one per S. */
export interface LlamaCppBatchResult {
  model: string;
  threads: number;
  load_ms: number;
  rows: LlamaCppBatchRow[];
}

export interface LlamaCppResult {
  backend: 'llama.cpp-cpu' | 'llama.cpp-cuda' | 'llama.cpp-vulkan';
  /** The GPU llama.cpp named, where it ran on one. */
  gpu_name?: string;
  model: string;
  threads: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  prompt_tokens: number;
  decode_tokens: number;
  load_ms: number;
  /** llama.cpp's tokens for checkText. */
  check_tokens: number[];
  /** The greedy tokens it generated (first few), for the record. */
  first_tokens: number[];
}

export interface LlamaCppRun {
  node_llama_cpp: string;
  results: LlamaCppResult[];
  /** The jobs with batchSequences, in order. */
  batches: LlamaCppBatchResult[];
}

/** Run the jobs one after another in a child process; stderr of the child is forwarded. */
export async function llamaCppBench(jobs: LlamaCppJob[], log: (s: string) => void = () => undefined): Promise<LlamaCppRun> {
  const script = fileURLToPath(new URL('./llama-cpp-child.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => {
    err.push(d);
    for (const line of d.toString('utf8').split('\n')) if (line.trim().length > 0) log(`[llama.cpp] ${line}`);
  });
  child.stdin.end(JSON.stringify(jobs));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`llama.cpp benchmark child failed (exit ${code}): ${Buffer.concat(err).toString('utf8').slice(-4000)}`);
  return JSON.parse(Buffer.concat(out).toString('utf8')) as LlamaCppRun;
}

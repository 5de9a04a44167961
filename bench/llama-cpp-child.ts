// Child process of bench/llama-cpp.ts: reads LlamaCppJob[] as JSON on stdin, prints LlamaCppRun.
// Timing follows hearth's benchmark: the prompt in one batch up to the first sampled token, then one token per step.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { getLlama, type Token } from 'node-llama-cpp';
import type { LlamaModel } from 'node-llama-cpp';
import type { LlamaCppBatchResult, LlamaCppBatchRow, LlamaCppJob, LlamaCppResult, LlamaCppRun } from './llama-cpp.js';

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LlamaCppJob[];
const pkg = JSON.parse(readFileSync(new URL('../node_modules/node-llama-cpp/package.json', import.meta.url), 'utf8')) as { version: string };

// One backend per child: the jobs of one run share it.
const gpu = jobs[0]?.gpu ?? false;
if (jobs.some((j) => (j.gpu ?? false) !== gpu)) throw new Error('one llama.cpp child runs one backend');
const llama = await getLlama({ gpu, build: 'never', logLevel: 'error' as never });
if (gpu !== false && llama.gpu !== gpu) throw new Error(`llama.cpp's ${gpu} build did not load (it got ${String(llama.gpu)})`);
const gpuName = gpu === false ? undefined : (await llama.getGpuDeviceNames()).join(', ');
const results: LlamaCppResult[] = [];
const batches: LlamaCppBatchResult[] = [];

// S sequences decoding together: each prompt prefilled, a few warm-up steps, then the median (and
// the fastest) of j.decodeTokens steps in which every sequence takes one token (their evaluate()
// calls, pending at once, go into one llama_decode). A step's wall time here includes
// node-llama-cpp's dispatch on the next event-loop cycle and llama.cpp's worker threads waking,
// which on this model is most of it and varies 1.5-30 ms from step to step.
async function batchDecode(model: LlamaModel, j: LlamaCppJob, S: number): Promise<LlamaCppBatchRow> {
  const prompts = (j.batchPrompts ?? []).slice(0, S);
  if (prompts.length < S) throw new Error(`batchSequences ${S} needs ${S} batchPrompts, got ${prompts.length}`);
  const longest = Math.max(...prompts.map((q) => q.length));
  const ctx = await model.createContext({
    sequences: S,
    contextSize: S * (longest + j.decodeTokens + 16),
    batchSize: Math.max(512, S * longest),
    threads: { ideal: j.threads, min: j.threads },
  });
  try {
    const its = prompts.map((q) => ctx.getSequence().evaluate(q as Token[], { temperature: 0, yieldEogToken: true }));
    const step = async (): Promise<void> => {
      const rs = await Promise.all(its.map((it) => it.next()));
      if (rs.some((r) => r.done)) throw new Error('a sequence ended early');
    };
    await step(); // the prompts, then their first tokens
    for (let k = 0; k < 4; k++) await step();
    const times: number[] = [];
    for (let k = 0; k < j.decodeTokens; k++) {
      const t = performance.now();
      await step();
      times.push(performance.now() - t);
    }
    await Promise.all(its.map((it) => it.return()));
    times.sort((a, b) => a - b);
    return { sequences: S, median_step_ms: times[times.length >> 1]!, min_step_ms: times[0]! };
  } finally {
    await ctx.dispose();
  }
}

for (const j of jobs) {
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: j.modelPath, gpuLayers: gpu === false ? 0 : 'max' });
  const loadMs = performance.now() - t0;
  if (j.batchSequences !== undefined) {
    const rows: LlamaCppBatchRow[] = [];
    for (const S of j.batchSequences) {
      rows.push(await batchDecode(model, j, S));
      process.stderr.write(`${basename(j.modelPath)}: ${S} sequences, fastest step ${rows.at(-1)!.min_step_ms.toFixed(1)} ms\n`);
    }
    batches.push({ model: basename(j.modelPath), threads: j.threads, load_ms: loadMs, rows });
    await model.dispose();
    continue;
  }
  const ctx = await model.createContext({
    contextSize: j.promptTokens.length + j.decodeTokens + 16,
    // One batch for the whole prompt, as hearth prefills it.
    batchSize: Math.max(512, j.promptTokens.length),
    threads: { ideal: j.threads, min: j.threads },
  });
  try {
    const seq = ctx.getSequence();
    // Warm-up: the prompt-sized graph's buffers, page faults on the weights, a few decode steps.
    const warm = seq.evaluate(j.promptTokens as Token[], { temperature: 0, yieldEogToken: true });
    for (let k = 0; k < 4; k++) if ((await warm.next()).done) break;
    await warm.return();
    await seq.clearHistory();

    const it = seq.evaluate(j.promptTokens as Token[], { temperature: 0, yieldEogToken: true });
    const ta = performance.now();
    const first = await it.next();
    const tb = performance.now();
    const tokens: number[] = [];
    if (!first.done) tokens.push(first.value as number);
    let n = 0;
    while (n < j.decodeTokens) {
      const r = await it.next();
      if (r.done) break;
      tokens.push(r.value as number);
      n++;
    }
    const tc = performance.now();
    await it.return();
    results.push({
      backend: gpu === false ? 'llama.cpp-cpu' : `llama.cpp-${gpu}`,
      ...(gpuName !== undefined ? { gpu_name: gpuName } : {}),
      model: basename(j.modelPath),
      threads: j.threads,
      prefill_tokens_per_s: (j.promptTokens.length / (tb - ta)) * 1000,
      decode_tokens_per_s: n > 0 ? (n / (tc - tb)) * 1000 : 0,
      prompt_tokens: j.promptTokens.length,
      decode_tokens: n,
      load_ms: loadMs,
      check_tokens: j.checkText !== undefined ? (model.tokenize(j.checkText, false) as number[]) : [],
      first_tokens: tokens.slice(0, 16),
    });
    process.stderr.write(
      `${basename(j.modelPath)}: prefill ${results.at(-1)!.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${results.at(-1)!.decode_tokens_per_s.toFixed(1)} tok/s\n`,
    );
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}
const out: LlamaCppRun = { node_llama_cpp: pkg.version, results, batches };
// Exit only after the pipe has taken all of it: a large write is asynchronous.
process.stdout.write(JSON.stringify(out), () => process.exit(0));

// Where a batched decode step's time goes: for 1, 2, 4, 8 and 16 sequences decoding together
// (each at ~60 tokens of context), the step's wall time (median of 9, after 4 warm-up steps; two passes) and its GPU time per
// kernel class from timestamp queries. Node (Dawn). Then the same for llama.cpp (node-llama-cpp, CPU, all cores) on the
// same model file: S sequences with their own ~60-token prompts decoding together, one llama_decode of S tokens a step
// (skip with --no-llama). `npx tsx bench/batch-step.ts [model.gguf] [--no-llama]` (default: the q4_0 benchmark model).

import { acquireNodeDevice, benchPrompt, fileSource, loadModel } from './node-runtime.js';
import { ensureBenchModels } from './models.js';

import { cpus } from 'node:os';
import { llamaCppBench } from './llama-cpp.js';

const args = process.argv.slice(2);
const path = args.find((a) => !a.startsWith('--')) ?? ensureBenchModels(['q4_0']).q4_0;
const SEQS = [1, 2, 4, 8, 16];
const ctx = await acquireNodeDevice();
const src = await fileSource(path);
const m = await loadModel(ctx, src, { maxContext: 512 });
const r = m.runner;
const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
process.stdout.write(
  `${path}\n| sequences | step ms, pass 1 / pass 2 | tok/s (faster pass) | GPU ms | per kernel class (GPU ms) |\n|---:|---:|---:|---:|---|\n`,
);
const prompts: number[][] = [];
// One batch of S sequences at ~60 tokens of context; each of them then decodes token 5 at position 60, again and again.
async function batch(S: number) {
  const seqs = Array.from({ length: S }, () => r.solo());
  for (const [i, s] of seqs.entries()) {
    const prompt = benchPrompt(m.cfg.vocabSize, 60 + i).slice(i);
    prompts[i] ??= prompt;
    await s.forwardSample(prompt, 0, greedy, 0);
    s.reserve(61);
  }
  const plan = seqs.map((s) => ({ blocks: s.blocks, tokens: [5], startPos: 60, sample: { sampling: greedy, counter: 1 } }));
  return { plan, release: () => seqs.forEach((s) => s.release()) };
}
// The median of 9 steps, after warm-up steps: the readback pacer (src/gpu/pacing.ts, on in Node on SwiftShader) learns
// this step's time in its first runs and spins a core until it has.
async function medianStep(plan: Awaited<ReturnType<typeof batch>>['plan']): Promise<number> {
  for (let k = 0; k < 4; k++) await r.run(plan);
  const times: number[] = [];
  for (let k = 0; k < 9; k++) {
    const t0 = performance.now();
    await r.run(plan);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[4]!;
}
// Two passes over the sizes, the second after all of the first: the machine is shared, and a burst of load on it can
// double a pass's steps for a few seconds; each row's tok/s is from its faster pass.
const passes: number[][] = [[], []];
const profiles: string[] = [];
for (const pass of [0, 1]) {
  for (const S of SEQS) {
    const b = await batch(S);
    passes[pass]!.push(await medianStep(b.plan));
    if (pass === 0) {
      const by = new Map<string, number>();
      for (const p of (await r.profileStep(b.plan)) ?? []) by.set(p.kernel, (by.get(p.kernel) ?? 0) + p.ms);
      const gpu = [...by.values()].reduce((a, c) => a + c, 0);
      profiles.push(`${gpu.toFixed(1)} | ${[...by].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
    }
    b.release();
  }
}
const hearthTokS = SEQS.map((S, i) => (S / Math.min(passes[0]![i]!, passes[1]![i]!)) * 1000);
for (const [i, S] of SEQS.entries()) {
  process.stdout.write(`| ${S} | ${passes[0]![i]!.toFixed(1)} / ${passes[1]![i]!.toFixed(1)} | ${hearthTokS[i]!.toFixed(1)} | ${profiles[i]} |\n`);
}
m.destroy();
await src.close?.();

if (!args.includes('--no-llama')) {
  const threads = cpus().length;
  const run = await llamaCppBench([{ modelPath: path, promptTokens: [], decodeTokens: 25, threads, batchSequences: SEQS, batchPrompts: prompts }], (l) =>
    process.stderr.write(`${l}\n`),
  );
  const rows = run.batches[0]?.rows ?? [];
  // A step's wall time there includes node-llama-cpp's dispatch on the next event-loop cycle and
  // its worker threads waking, most of it on this model and 1-20 ms from step to step: the fastest
  // step is the comparable figure, the median is shown for the record.
  const one = { hearth: hearthTokS[0]!, llama: rows[0]?.min_step_ms ?? NaN };
  process.stdout.write(
    `\nllama.cpp (node-llama-cpp ${run.node_llama_cpp}, CPU, ${threads} threads), same model and prompts: S sequences decoding together, 25 steps after 4 warm-up steps\n` +
      `| sequences | llama.cpp fastest step ms (median) | llama.cpp tok/s, fastest step | llama.cpp × one sequence | hearth × one sequence |\n|---:|---:|---:|---:|---:|\n`,
  );
  for (const [i, r] of rows.entries()) {
    process.stdout.write(
      `| ${r.sequences} | ${r.min_step_ms.toFixed(1)} (${r.median_step_ms.toFixed(1)}) | ${((r.sequences / r.min_step_ms) * 1000).toFixed(0)} | ` +
        `${((r.sequences * one.llama) / r.min_step_ms).toFixed(2)}× | ${(hearthTokS[i]! / one.hearth).toFixed(2)}× |\n`,
    );
  }
}
process.exit(0);

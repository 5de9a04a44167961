// Where a batched decode step's time goes: for 1, 2, 4, 8 and 16 sequences decoding together
// (each at ~60 tokens of context), the step's wall time (median of 9, after 4 warm-up steps) and its GPU time per
// kernel class from timestamp queries. Node (Dawn). `npx tsx bench/batch-step.ts [model.gguf]`
// (default: the q4_0 benchmark model).

import { acquireNodeDevice, benchPrompt, fileSource, loadModel } from './node-runtime.js';
import { ensureBenchModels } from './models.js';

const path = process.argv[2] ?? ensureBenchModels(['q4_0']).q4_0;
const ctx = await acquireNodeDevice();
const src = await fileSource(path);
const m = await loadModel(ctx, src, { maxContext: 512 });
const r = m.runner;
const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
process.stdout.write(`${path}\n| sequences | step ms | tok/s | GPU ms | per kernel class (GPU ms) |\n|---:|---:|---:|---:|---|\n`);
for (const S of [1, 2, 4, 8, 16]) {
  const seqs = Array.from({ length: S }, () => r.solo());
  for (const [i, s] of seqs.entries()) {
    await s.forwardSample(benchPrompt(m.cfg.vocabSize, 60 + i).slice(i), 0, greedy, 0);
    s.reserve(61);
  }
  const plan = seqs.map((s) => ({ blocks: s.blocks, tokens: [5], startPos: 60, sample: { sampling: greedy, counter: 1 } }));
  // Warm-up steps first: the readback pacer (src/gpu/pacing.ts, on in Node on SwiftShader) learns
  // this step's time in its first runs and spins a core until it has.
  for (let k = 0; k < 4; k++) await r.run(plan);
  const times: number[] = [];
  for (let k = 0; k < 9; k++) {
    const t0 = performance.now();
    await r.run(plan);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const step = times[4]!;
  const by = new Map<string, number>();
  for (const p of (await r.profileStep(plan)) ?? []) by.set(p.kernel, (by.get(p.kernel) ?? 0) + p.ms);
  const gpu = [...by.values()].reduce((a, b) => a + b, 0);
  const kernels = [...by].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
  process.stdout.write(`| ${S} | ${step.toFixed(1)} | ${((S / step) * 1000).toFixed(1)} | ${gpu.toFixed(1)} | ${kernels} |\n`);
  for (const s of seqs) s.release();
}
m.destroy();
await src.close?.();
process.exit(0);

// SpecHub against RRS without noise: the exact probability that a node's two drafted children
// yield an accepted token (src/spec/verify-ref.ts pairAcceptance, checked against the enumeration
// in the unit tests), averaged over real contexts of the benchmark pair: the F32 bench model as
// the target and its Q4_0 copy as the draft, p and q from their own logits at each position of a
// sampled continuation. The serving benchmark's tokens-per-pass comparison (bench/speculative.ts)
// needs thousands of verify steps to resolve differences this size; this needs none.
//
// `npx tsx bench/spec-acceptance.ts [--contexts N] [--write]`

import { argValue, machineInfo, REPO, writeBenchmarksSection } from './report.js';
import { acquireNodeDevice, benchPrompt, fileSource, generate, loadModel } from './node-runtime.js';
import { ensureBenchModels } from './models.js';

const { pairAcceptance, softmaxT } = await import('../src/spec/verify-ref.js');

const N = Number(argValue('--contexts') ?? 96);
const paths = ensureBenchModels(['f32', 'q4_0']);
const ctx = await acquireNodeDevice();
const src = await fileSource(paths.f32);
const draftSrc = await fileSource(paths.q4_0);
const model = await loadModel(ctx, src, { maxContext: 512, draft: draftSrc });
const V = model.cfg.vocabSize;

// Contexts: the bench prompt and a continuation sampled from the target at T = 1.
const prompt = benchPrompt(V, 48);
const cont = await generate(model, { promptTokens: prompt, maxTokens: N, temperature: 1, topK: 0, topP: 1, seed: 11, ignoreEog: true });
const seq = [...prompt, ...cont.tokens];

/** Logits after each of positions prompt.length - 1 .. prompt.length + N - 2, fed one token at a time. */
async function logitsAlong(runner: typeof model.runner): Promise<Float32Array[]> {
  const solo = runner.solo();
  try {
    const out = [await solo.forwardLogits(seq.slice(0, prompt.length), 0)];
    for (let k = prompt.length; k < prompt.length + N - 1; k++) out.push(await solo.forwardLogits([seq[k]!], k));
    return out;
  } finally {
    solo.release();
  }
}
const pl = await logitsAlong(model.runner);
const ql = await logitsAlong(model.draft!.runner);
model.destroy();
await src.close?.();
await draftSrc.close?.();

const methods = ['spechub', 'rrs-wo', 'rrs'] as const;
const rows: string[] = [];
for (const T of [0.6, 1.0]) {
  const sums = { spechub: 0, 'rrs-wo': 0, rrs: 0, one: 0 };
  for (let k = 0; k < pl.length; k++) {
    const p = softmaxT(pl[k]!, T);
    const q = softmaxT(ql[k]!, T);
    for (const m of methods) sums[m] += pairAcceptance(p, q, m);
    for (let i = 0; i < V; i++) sums.one += Math.min(p[i]!, q[i]!);
  }
  const f = (x: number): string => (x / pl.length).toFixed(4);
  rows.push(`| ${T} | ${f(sums.one)} | ${f(sums.spechub)} | ${f(sums['rrs-wo'])} | ${f(sums.rrs)} | ${sums.spechub >= sums['rrs-wo'] ? 'yes' : 'no'} |`);
  process.stderr.write(`${rows.at(-1)}\n`);
}

const m = machineInfo();
const section = [
  `## Speculative decoding: SpecHub against RRS, exact acceptance on the benchmark pair (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Target \`${paths.f32.replace(REPO + '/', '')}\` (F32), draft \`${paths.q4_0.replace(REPO + '/', '')}\` (the same weights in Q4_0), vocabulary ${V}. ${pl.length} contexts: the bench prompt and the target's own continuation sampled at T = 1 (seed 11), p and q from each model's logits at every position, draft temperature = target temperature. Each cell is the exact probability, averaged over the contexts, that a node yields an accepted token: one draft (Σ min(p, q)), or two drafts under each verifier (\`pairAcceptance\` in src/spec/verify-ref.ts, equal to the enumeration of every draft pair in the unit tests). No sampling, so no noise beyond the choice of contexts. ${m.cpu}; ${m.git}.`,
  '',
  '| T | one draft | SpecHub (2) | RRS without replacement (2) | RRS (2) | SpecHub ≥ RRS-wo |',
  '|---:|---:|---:|---:|---:|---|',
  ...rows,
  '',
  'Command: `npx tsx bench/spec-acceptance.ts --write`.',
].join('\n');
process.stdout.write(section + '\n');
if (process.argv.includes('--write')) writeBenchmarksSection('spec-acceptance', section);
process.exit(0);

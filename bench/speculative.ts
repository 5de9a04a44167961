// Speculative decoding, measured (issue 7): per drafter, tree, verifier and temperature (0, 0.6,
// 1.0), tokens per target pass and decode speed beside plain decoding of the same request, through
// the serving loop (generate()). Target: the benchmark model in F32 (bench/models.ts, d=512, 4
// layers); drafters: its Q4_0 copy (same weights) as a draft model, its own first 2 blocks
// (self:2), and prompt lookup (ngram) on a repetitive prompt. Greedy rows check that the output is
// identical to plain decoding. SpecHub, RRS and RRS without replacement are compared on the same
// binary tree (width 2, depth 3: 14 drafted nodes).
//
// `npx tsx bench/speculative.ts [--target F.gguf --draft D.gguf] [--tokens N] [--rounds R] [--write]`
// (--write rewrites the speculative section of BENCHMARKS.md).

import { register } from 'node:module';
import { loadavg } from 'node:os';
import { machineInfo, REPO, writeBenchmarksSection } from './report.js';

// src/ imports WGSL with Vite's `?raw`: register the hook before loading it.
register('../bin/wgsl-hooks.mjs', import.meta.url);
const { acquireNodeDevice } = await import('../src/gpu/device-node.js');
const { describeAdapter } = await import('../src/gpu/device.js');
const { fileSource } = await import('../src/model/file-source-node.js');
const { loadModel } = await import('../src/model/model.js');
const { generate } = await import('../src/engine/generate.js');
const { benchPrompt } = await import('../src/engine/bench.js');
const { ensureBenchModels } = await import('./models.js');
type SpeculativeOptions = import('../src/engine/scheduler.js').SpeculativeOptions;

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const models = arg('--target') ? null : ensureBenchModels(['f32', 'q4_0']);
const targetPath = arg('--target') ?? models!.f32;
const draftPath = arg('--draft') ?? models!.q4_0;
const TOKENS = Number(arg('--tokens') ?? 64);
/** Plain and speculative runs alternate this many times per row; medians are reported. */
const ROUNDS = Number(arg('--rounds') ?? 2);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const ctx = await acquireNodeDevice();
const src = await fileSource(targetPath);
const draftSrc = await fileSource(draftPath);
const model = await loadModel(ctx, src, { maxContext: 512, draft: draftSrc });
const V = model.cfg.vocabSize;
// The bench prompt (cycled ids) for the model drafts; a phrase said four times for prompt lookup.
const plainPrompt = benchPrompt(V, 64);
const phrase = benchPrompt(V, 12).map((t, i) => 3 + ((t * 31 + i) % (V - 3)));
const repetitive = [...phrase, ...phrase, ...phrase, ...phrase];

interface Config {
  drafter: string;
  spec: SpeculativeOptions;
  prompt: number[];
}
const CHAIN = { width: 1, depth: 4 };
const TREE = { width: 2, depth: 3 };
const configs = (T: number): Config[] => {
  const out: Config[] = [];
  const methods = T === 0 ? (['greedy'] as const) : (['rrs', 'rrs-wo'] as const);
  for (const [drafter, draft, prompt] of [
    ['Q4_0 draft model', 'model', plainPrompt],
    ['self-draft, 2 of 4 blocks', 'self:2', plainPrompt],
    ['n-gram (repetitive prompt)', 'ngram', repetitive],
  ] as const) {
    for (const method of methods) out.push({ drafter, spec: { draft, tree: CHAIN, method }, prompt: [...prompt] });
    for (const method of methods) out.push({ drafter, spec: { draft, tree: TREE, method }, prompt: [...prompt] });
    if (T > 0 && draft !== 'ngram') out.push({ drafter, spec: { draft, tree: TREE, method: 'spechub' }, prompt: [...prompt] });
  }
  return out;
};

interface Row {
  T: number;
  drafter: string;
  tree: string;
  method: string;
  plain: number;
  spec: number;
  perPass: number;
  acceptRate: number;
  identical: boolean | null;
}
const rows: Row[] = [];
await generate(model, { promptTokens: plainPrompt, maxTokens: 4, temperature: 0, ignoreEog: true });
for (const T of [0, 0.6, 1.0]) {
  for (const c of configs(T)) {
    const req = { promptTokens: c.prompt, maxTokens: TOKENS, temperature: T, topK: 0, topP: 1, seed: 7, ignoreEog: true };
    const plainRates: number[] = [];
    const specRates: number[] = [];
    let identical: boolean | null = T > 0 ? null : true;
    let accepted = 0;
    let steps = 0;
    let drafted = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const plain = await generate(model, req);
      plainRates.push(plain.timings.decodeTokensPerS);
      const before = model.scheduler.stats();
      const spec = await generate(model, { ...req, speculative: c.spec });
      const after = model.scheduler.stats();
      specRates.push(spec.timings.decodeTokensPerS);
      accepted += after.acceptedDraftTokens - before.acceptedDraftTokens;
      drafted += after.draftedTokens - before.draftedTokens;
      steps += after.verifySteps - before.verifySteps;
      if (T === 0) identical = identical! && JSON.stringify(plain.tokens) === JSON.stringify(spec.tokens);
    }
    rows.push({
      T,
      drafter: c.drafter,
      tree: c.spec.tree!.width === 1 ? `chain ${c.spec.tree!.depth}` : `binary ${c.spec.tree!.depth}`,
      method: c.spec.method!,
      plain: median(plainRates),
      spec: median(specRates),
      perPass: steps > 0 ? (accepted + steps) / steps : 1,
      acceptRate: drafted > 0 ? accepted / drafted : 0,
      identical,
    });
    process.stderr.write(`${JSON.stringify(rows.at(-1))}\n`);
  }
}
model.destroy();
await src.close?.();
await draftSrc.close?.();

const m = machineInfo();
const f = (x: number, d = 2): string => x.toFixed(d);
const rel = (p: string): string => p.replace(REPO + '/', '');
const hub = (T: number, drafter: string): string => {
  const pick = (method: string): Row | undefined => rows.find((r) => r.T === T && r.drafter === drafter && r.tree.startsWith('binary') && r.method === method);
  const [h, wo, rr] = [pick('spechub'), pick('rrs-wo'), pick('rrs')];
  return h && wo && rr ? `| ${T} | ${drafter} | ${f(h.perPass)} | ${f(wo.perPass)} | ${f(rr.perPass)} | ${h.perPass >= wo.perPass ? 'yes' : 'no'} |` : '';
};
const section = [
  `## Speculative decoding (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Target \`${rel(targetPath)}\` (F32, d=512, 4 layers, vocabulary ${V}); draft model \`${rel(draftPath)}\` (the same weights in Q4_0). ${describeAdapter(ctx.adapter)} (Dawn, Node), ${m.cpu}, ${m.cores} cores, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(
      ' / ',
    )} at the end; ${m.git}. One request at a time through the serving loop, ${TOKENS} new tokens (end-of-generation ignored), top-k and top-p off. Decode tok/s: medians of ${ROUNDS} runs, plain and speculative alternating. Tokens per target pass = (accepted drafts + 1) per verify step; acceptance = accepted ÷ drafted nodes (a binary tree drafts many nodes that cannot all be accepted). Temperature 0 is verified by argmax match (output identical), sampled rows by the named verifier (lossless; see the chi-square table below).`,
  '',
  '| T | drafter | tree | verifier | plain tok/s | speculative tok/s | speedup | tokens / target pass | acceptance | identical |',
  '|---:|---|---|---|---:|---:|---:|---:|---:|---|',
  ...rows.map(
    (r) =>
      `| ${r.T} | ${r.drafter} | ${r.tree} | ${r.method} | ${f(r.plain, 1)} | ${f(r.spec, 1)} | ${f(r.spec / r.plain)}× | ${f(r.perPass)} | ${f(100 * r.acceptRate, 0)} % | ${r.identical === null ? '–' : r.identical ? 'yes' : 'NO'} |`,
  ),
  '',
  'SpecHub against RRS on the same binary tree (width 2, depth 3), tokens per target pass:',
  '',
  '| T | drafter | SpecHub | RRS without replacement | RRS | SpecHub ≥ RRS-wo |',
  '|---:|---|---:|---:|---:|---|',
  ...[0.6, 1.0].flatMap((T) => ['Q4_0 draft model', 'self-draft, 2 of 4 blocks'].map((d) => hub(T, d))).filter((l) => l !== ''),
  '',
  'Command: `npx tsx bench/speculative.ts --write`.',
].join('\n');
process.stdout.write(section + '\n');
if (process.argv.includes('--write')) writeBenchmarksSection('speculative', section);
process.exit(rows.every((r) => r.identical !== false) ? 0 : 1);

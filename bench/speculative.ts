// Speculative decoding, measured (issue 7, first slice): greedy generation with and without
// prompt-lookup (n-gram) drafts on the same prompts, in Node on SwiftShader: decode tokens/s, drafted
// and accepted tokens, tokens per target pass, and whether the outputs are identical (they must
// be). `npx tsx bench/speculative.ts [--model F.gguf] [--write]` rewrites the speculative section
// of BENCHMARKS.md.

import { register } from 'node:module';
import { writeBenchmarksSection } from './report.js';
import { loadavg } from 'node:os';
import { join } from 'node:path';

// src/ imports WGSL with Vite's `?raw`: register the hook before loading it.
register('../bin/wgsl-hooks.mjs', import.meta.url);
const { acquireNodeDevice } = await import('../src/gpu/device-node.js');
const { fileSource } = await import('../src/model/file-source-node.js');
const { loadModel } = await import('../src/model/model.js');
const { generate } = await import('../src/engine/generate.js');

const REPO = join(import.meta.dirname, '..');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const modelPath = arg('--model') ?? join(REPO, 'demo/models/hearth-tiny.gguf');
const MAX_TOKENS = 96;
const DEPTHS = [2, 4, 8];
/** Plain and speculative runs alternate this many times per row; the medians are reported (single runs swing ±20 % here). */
const ROUNDS = 3;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const ctx = await acquireNodeDevice();
const src = await fileSource(modelPath);
const model = await loadModel(ctx, src, { maxContext: 1024 });
const tok = model.tokenizer;
// Prompts a prompt-lookup drafter is made for (text that repeats what it has seen) and one that is not.
const prompts: [string, string][] = [
  ['repetitive', 'one two three four five, one two three four five, one two three four five, one two three'],
  ['list', 'red apple, green apple, red apple, green apple, red apple, green'],
  ['prose', 'The old lighthouse keeper woke before dawn and walked down to the sea'],
];

interface Row {
  prompt: string;
  depth: number;
  plainTokPerS: number;
  specTokPerS: number;
  drafted: number;
  accepted: number;
  passes: number;
  tokens: number;
  identical: boolean;
}
const rows: Row[] = [];
await generate(model, { prompt: 'warm up', maxTokens: 8, temperature: 0 });
for (const [name, text] of prompts) {
  const promptTokens = tok.encode(text, { addBos: tok.addBos });
  for (const depth of DEPTHS) {
    const plainRates: number[] = [];
    const specRates: number[] = [];
    let plain = await generate(model, { promptTokens, maxTokens: MAX_TOKENS, temperature: 0 });
    let spec = plain;
    let drafted = 0;
    let accepted = 0;
    for (let round = 0; round < ROUNDS; round++) {
      plain = await generate(model, { promptTokens, maxTokens: MAX_TOKENS, temperature: 0 });
      plainRates.push(plain.timings.decodeTokensPerS);
      const before = model.scheduler.stats();
      spec = await generate(model, { promptTokens, maxTokens: MAX_TOKENS, temperature: 0, speculative: { draft: 'ngram', depth } });
      const after = model.scheduler.stats();
      specRates.push(spec.timings.decodeTokensPerS);
      drafted = after.draftedTokens - before.draftedTokens;
      accepted = after.acceptedDraftTokens - before.acceptedDraftTokens;
    }
    // Target passes after the prefill: one per decode step (each verifies its drafts, if any).
    const passes = spec.tokens.length - 1 - accepted;
    rows.push({
      prompt: name,
      depth,
      plainTokPerS: median(plainRates),
      specTokPerS: median(specRates),
      drafted,
      accepted,
      passes,
      tokens: spec.tokens.length,
      identical: JSON.stringify(spec.tokens) === JSON.stringify(plain.tokens),
    });
    process.stderr.write(`${name} depth ${depth}: ${JSON.stringify(rows.at(-1))}\n`);
  }
}
model.destroy();
await src.close?.();

const f = (x: number, d = 2): string => x.toFixed(d);
const section = [
  `## Speculative decoding: prompt lookup, greedy (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Model: \`${modelPath.replace(REPO + '/', '')}\` (greedy, ${MAX_TOKENS} new tokens). Node, Dawn on SwiftShader, 2 cores, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(
      ' / ',
    )} at the end. Drafts: up to \`depth\` tokens that followed the latest earlier occurrence of the context's last 1–3 tokens; the target verifies them in the pass that computes its own next token. Tokens per target pass = generated tokens after the first ÷ decode passes. Decode tok/s: medians of ${ROUNDS} runs each, plain and speculative alternating.`,
  '',
  '| prompt | depth | plain decode tok/s | speculative decode tok/s | speedup | drafted | accepted | tokens per target pass | output identical |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ...rows.map(
    (r) =>
      `| ${r.prompt} | ${r.depth} | ${f(r.plainTokPerS, 1)} | ${f(r.specTokPerS, 1)} | ${f(r.specTokPerS / r.plainTokPerS)}× | ${r.drafted} | ${r.accepted} | ${f((r.tokens - 1) / Math.max(1, r.passes))} | ${r.identical ? 'yes' : 'NO'} |`,
  ),
  '',
  'Command: `npx tsx bench/speculative.ts --write`. Draft models, self-drafting, token trees and the sampling verifiers (SpecHub, RRS) are not built yet (issue 7).',
].join('\n');
process.stdout.write(section + '\n');
if (process.argv.includes('--write')) writeBenchmarksSection('speculative', section);
process.exit(rows.every((r) => r.identical) ? 0 : 1);

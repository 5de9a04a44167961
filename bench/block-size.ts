// The KV block size, measured: for each candidate size, the decode step at a long context (one
// sequence) and a batched decode step (8 sequences), with the attention kernel's GPU time from
// timestamp queries, plus the memory a half-filled last block wastes per sequence. Node (Dawn),
// the bundled tiny model. `npx tsx bench/block-size.ts [--write]` rewrites the block-size section
// of BENCHMARKS.md.

import { acquireNodeDevice, benchPrompt, fileSource, loadModel, ModelRunner } from './node-runtime.js';
import { writeBenchmarksSection } from './report.js';
import { join } from 'node:path';
import type { StepSeq } from '../src/model/forward.js';

const MODEL = join(import.meta.dirname, '../demo/models/hearth-tiny.gguf');
const SIZES = [8, 16, 32, 64];
const CONTEXT = 768;
const SEQS = 8;
const SEQ_CONTEXT = 200;
const DECODE = 24;
const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };

interface Row {
  blockSize: number;
  soloMs: number;
  soloAttnMs: number;
  batchMs: number;
  batchAttnMs: number;
  wasteKiB: number;
}

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

async function measure(blockSize: number): Promise<Row> {
  const ctx = await acquireNodeDevice();
  const src = await fileSource(MODEL);
  const m = await loadModel(ctx, src, { maxContext: 1024, kvCacheTokens: 4096, maxBatch: 256, blockSize });
  const r = m.runner;
  const attn = (p: { kernel: string; ms: number }[] | null): number => (p ?? []).filter((k) => k.kernel === 'attention').reduce((a, k) => a + k.ms, 0);
  try {
    // One sequence at a long context.
    const solo = r.solo();
    const prompt = benchPrompt(m.cfg.vocabSize, CONTEXT);
    let t = (await solo.forwardSample(prompt, 0, greedy, 0)).token;
    const times: number[] = [];
    for (let i = 0; i < DECODE; i++) {
      const t0 = performance.now();
      t = (await solo.forwardSample([t], CONTEXT + i, greedy, i + 1)).token;
      times.push(performance.now() - t0);
    }
    solo.reserve(CONTEXT + DECODE + 1);
    const soloAttn = attn(await r.profileStep([{ blocks: solo.blocks, tokens: [t], startPos: CONTEXT + DECODE, sample: { sampling: greedy, counter: 0 } }]));
    solo.release();
    // SEQS sequences decoding together.
    const seqs = Array.from({ length: SEQS }, () => r.solo());
    const last: number[] = [];
    for (const [i, s] of seqs.entries()) last.push((await s.forwardSample(benchPrompt(m.cfg.vocabSize, SEQ_CONTEXT + i).slice(i), 0, greedy, 0)).token);
    const lens = seqs.map(() => SEQ_CONTEXT);
    const btimes: number[] = [];
    let plan: StepSeq[] = [];
    for (let k = 0; k < DECODE; k++) {
      plan = seqs.map((s, i) => {
        s.reserve(lens[i]! + 1);
        return { blocks: s.blocks, tokens: [last[i]!], startPos: lens[i]!, sample: { sampling: greedy, counter: k + 1 } };
      });
      const t0 = performance.now();
      const out = await r.run(plan);
      btimes.push(performance.now() - t0);
      out.forEach((o, i) => {
        last[i] = o!.token;
        lens[i]!++;
      });
    }
    const batchAttn = attn(await r.profileStep(plan));
    for (const s of seqs) s.release();
    const perTokenBytes = ModelRunner.kvBytes(m.cfg, 1, 1);
    return {
      blockSize,
      soloMs: median(times),
      soloAttnMs: soloAttn,
      batchMs: median(btimes),
      batchAttnMs: batchAttn,
      wasteKiB: ((blockSize / 2) * perTokenBytes) / 1024,
    };
  } finally {
    m.destroy();
    await src.close?.();
  }
}

const rows: Row[] = [];
for (const bs of SIZES) {
  rows.push(await measure(bs));
  process.stderr.write(`block ${bs}: ${JSON.stringify(rows.at(-1))}\n`);
}
const f = (x: number): string => x.toFixed(2);
const table = [
  `## KV block size (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Model: demo/models/hearth-tiny.gguf (llama, Q8_0, d=256, 4 layers, 4 KV heads × 32). Node, Dawn on SwiftShader, 2 cores.`,
  `Decode step (median of ${DECODE}) for one sequence at ${CONTEXT} tokens of context, and for ${SEQS} sequences of ~${SEQ_CONTEXT} tokens`,
  'decoding together; attention = GPU time of the attention dispatches of one such step (timestamp queries); waste = the KV a',
  'half-filled last block leaves unused per sequence, on average.',
  '',
  '| block size | 1 seq step ms | 1 seq attention ms | 8 seq step ms | 8 seq attention ms | waste per seq |',
  '|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.blockSize} | ${f(r.soloMs)} | ${f(r.soloAttnMs)} | ${f(r.batchMs)} | ${f(r.batchAttnMs)} | ${f(r.wasteKiB)} KiB |`),
  '',
  'Command: `npx tsx bench/block-size.ts --write`.',
].join('\n');
process.stdout.write(table + '\n');
if (process.argv.includes('--write')) writeBenchmarksSection('blocksize', table);
process.exit(0);

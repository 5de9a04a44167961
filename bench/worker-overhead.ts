// `npm run bench:worker`: what the module worker costs against a LocalEngine on the page's main thread
// (issue 4): the same greedy streamed completions through both in one headless Chromium page
// (bench/worker-overhead-page.ts), paired per prompt, on the smallest llama fixture (where the fixed
// cost of crossing threads weighs most) and on the bundled demo model. Markdown on stdout;
// `--write` replaces the section between the workeroverhead markers in BENCHMARKS.md.
// Flags: --runs 3 (fresh page each)  --prompts 24  --max-tokens 32  --quick (1 run, 8 prompts)  --json FILE  --write

import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { argValue, machineInfo, REPO, writeBenchmarksSection } from './report.js';
import { startBrowserSession } from './browser.js';
import { fixturePath } from '../test/fixtures/models.js';
import { summarize, type Estimate, type OverheadPair, type OverheadSummary } from './worker-overhead-stats.js';

const log = (s: string): void => {
  process.stderr.write(`bench:worker: ${s}\n`);
};

const quick = process.argv.includes('--quick');
const runs = Number(argValue('--runs') ?? (quick ? 1 : 3));
const promptCount = Number(argValue('--prompts') ?? (quick ? 8 : 24));
const maxTokens = Number(argValue('--max-tokens') ?? 32);
const jsonPath = argValue('--json');

/** Distinct prompts of a few tokens each (the fixtures' vocabularies cover plain English). */
function prompts(n: number): string[] {
  const starts = ['Once upon a time', 'The little dog ran', 'In the morning the sun', 'She opened the door and', 'A long way from home', 'The old man said'];
  const tails = ['', ' that', ' and then', ' because the'];
  const out: string[] = [];
  for (const t of tails) for (const s of starts) out.push(s + t);
  if (n > out.length) throw new Error(`at most ${out.length} prompts`);
  return out.slice(0, n);
}

interface Row {
  model: string;
  run: number;
  summary: OverheadSummary;
  pairs: OverheadPair[];
}

async function main(): Promise<void> {
  const fixture = fixturePath('llama-f32');
  const models = [
    { name: 'llama-f32 fixture (d=192, 2 layers)', url: `/models/${basename(fixture)}` },
    { name: 'hearth-tiny, the bundled demo model', url: `/models/hearth-tiny.gguf` },
  ];
  const t0 = performance.now();
  const load0 = loadavg();
  const session = await startBrowserSession({ modelDirs: [dirname(fixture), join(REPO, 'demo/models')] });
  const rows: Row[] = [];
  try {
    const pageModule = `/@fs${join(REPO, 'bench/worker-overhead-page.ts')}`;
    for (let run = 1; run <= runs; run++)
      for (const m of models) {
        const page = await session.newPage('index.html');
        try {
          const r = await page.evaluate(
            async (a) => {
              const mod = (await import(a.pageModule)) as typeof import('./worker-overhead-page.js');
              return mod.measureWorkerOverhead({ url: a.url, prompts: a.prompts, maxTokens: a.maxTokens });
            },
            { pageModule, url: m.url, prompts: prompts(promptCount), maxTokens },
          );
          r.pairs.forEach((p, i) => {
            if (p.worker.text !== p.mainThread.text) throw new Error(`${m.name}, prompt ${i}: the worker and the main thread generated different text`);
          });
          rows.push({ model: m.name, run, summary: r.summary, pairs: r.pairs });
          const s = r.summary;
          log(
            `run ${run}, ${m.name}: TTFT ${s.ttftOverPct.value.toFixed(1)} % (${s.ttftDiffMs.value.toFixed(2)} ms), decode ${s.decodeUnderPct.value.toFixed(1)} %`,
          );
        } finally {
          await page.close();
        }
      }
  } finally {
    await session.close();
  }
  // Every run's pairs together: the tighter interval, when there was more than one run.
  if (runs > 1)
    for (const m of models) {
      const pairs = rows.filter((r) => r.model === m.name).flatMap((r) => r.pairs);
      rows.push({ model: m.name, run: 0, summary: summarize(pairs), pairs: [] });
    }
  const wallS = (performance.now() - t0) / 1000;
  const load1 = loadavg();
  const machine = machineInfo();

  const single = rows.filter((r) => r.run > 0);
  const ms = (x: number): string => `${x.toFixed(1)} ms`;
  const pct = (e: Estimate): string => `${sign(e.value)} % [${sign(e.lo)}, ${sign(e.hi)}]`;
  const lines = [
    `## Worker overhead (issue 4, ${new Date().toISOString().slice(0, 10)})`,
    '',
    `Machine: ${machine.cpu}, ${machine.memory_gib.toFixed(0)} GiB, no GPU: WebGPU on SwiftShader in headless Chromium ${session.browser.version()}. Load average ${load0.map((x) => x.toFixed(2)).join(' / ')} at the start, ${load1.map((x) => x.toFixed(2)).join(' / ')} at the end. Commit ${machine.git}.`,
    '',
    `Command: \`npm run bench:worker -- --write\` (wall time ${wallS.toFixed(0)} s). Each run is a fresh page holding both engines: \`createEngine()\` (the module worker) and a \`LocalEngine\` on the page's main thread, each loaded from the same Blob. After one warm-up request each, ${promptCount} different prompts go through both, back to back, the order alternating; every request is a greedy \`completions.create({ stream: true, max_tokens: ${maxTokens} })\`, and both engines must produce the same text. TTFT: create() → the first chunk with text, as the page sees it. Decode: tokens after the first ÷ (last chunk − first text chunk).`,
    '',
    "Paired statistics, since the prompts' lengths and the machine's load swing single requests by ±30 %: TTFT difference = the median over prompts of (worker − main thread), and as a percentage of the main thread's median TTFT; decode difference = 1 − the median over prompts of (worker ÷ main thread). Brackets: 95 % bootstrap intervals (2,000 resamples of the prompts). + = the worker is slower.",
    '',
    '| model | run | worker TTFT | main-thread TTFT | TTFT difference | TTFT difference, % | worker decode | main-thread decode | decode difference, % |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const s = r.summary;
      return `| ${r.model} | ${r.run === 0 ? `all ${runs}` : r.run} | ${ms(s.worker.ttftMs)} | ${ms(s.mainThread.ttftMs)} | ${sign(s.ttftDiffMs.value, 2)} ms | ${pct(s.ttftOverPct)} | ${s.worker.decodeTokensPerS.toFixed(1)} tok/s | ${s.mainThread.decodeTokensPerS.toFixed(1)} tok/s | ${pct(s.decodeUnderPct)} |`;
    }),
    '',
    `Issue 4's target: both within 5 %. Worst point estimate of a single run: TTFT ${sign(Math.max(...single.map((r) => r.summary.ttftOverPct.value)))} %, decode ${sign(Math.max(...single.map((r) => r.summary.decodeUnderPct.value)))} %.${runs > 1 ? ` "all ${runs}": the runs' pairs pooled.` : ''}`,
  ];
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ machine, wallS, loadStart: load0, loadEnd: load1, promptCount, maxTokens, rows }, null, 2));
  if (process.argv.includes('--write')) {
    writeBenchmarksSection('workeroverhead', md);
    log('BENCHMARKS.md updated');
  }
}

function sign(x: number, digits = 1): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
}

main().catch((e: unknown) => {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});

// demo/bench.html: window.hearthBench (what `hearth bench --browser` and `npm run bench` drive),
// with and without wllama, and the Run button. Each export is a test taking the runner's context
// `t`; timings are checked for sign only.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export async function hearthBenchReturnsPositiveTokensPerSecond(t) {
  const page = await t.page('bench.html');
  await page.waitForFunction(() => typeof window.hearthBench === 'function');
  const r = await page.evaluate((url) => window.hearthBench({ model: url, promptTokens: 16, decodeTokens: 8 }), t.fixtures['llama-f32'].url);
  t.assert.equal(r.backend, 'chromium-worker');
  t.assert.ok(r.adapter.length > 0);
  t.assert.ok(r.prefill_tokens_per_s > 0, `prefill ${r.prefill_tokens_per_s}`);
  t.assert.ok(r.decode_tokens_per_s > 0, `decode ${r.decode_tokens_per_s}`);
  t.assert.equal(r.prompt_tokens, 16);
  t.assert.equal(r.decode_tokens, 8);
  t.log(`prefill ${r.prefill_tokens_per_s.toFixed(1)} tok/s, decode ${r.decode_tokens_per_s.toFixed(1)} tok/s on ${r.adapter}`);

  // The page's own Run button reuses the loaded model and adds its row after hearthBench's.
  await page.fill('#url', t.fixtures['llama-f32'].url);
  await page.fill('#prompt-tokens', '8');
  await page.fill('#decode-tokens', '4');
  await page.uncheck('#with-wllama');
  await page.uncheck('#with-ceilings');
  await page.click('#run');
  await page.waitForFunction(() => document.querySelectorAll('#runs tr').length === 2, null, { timeout: 60_000 });
  const shown = Number(await page.textContent('#decode'));
  t.assert.ok(shown > 0, `decode tok/s shown: ${shown}`);
  t.assert.equal(await page.textContent('#error'), '');
}

/** A quick model with the benchmark vocabulary (no lone byte tokens: wllama rejects invalid UTF-8 output). */
async function tinyBenchModel(t) {
  const { buildBenchModel } = await import('../../bench/models.ts');
  const name = 'bench-vocab-tiny-q8_0.gguf';
  const path = join(t.repo, 'test/fixtures/out', name);
  if (!existsSync(path)) {
    const shape = { dModel: 64, numHeads: 2, numKvHeads: 1, numLayers: 1, ffDim: 96, contextLength: 256, seed: 5 };
    writeFileSync(path, buildBenchModel('q8_0', shape));
  }
  return `/models/${name}`;
}

export async function hearthBenchRunsWllamaOnTheSameFile(t) {
  const url = await tinyBenchModel(t);
  const page = await t.page('bench.html');
  await page.waitForFunction(() => typeof window.hearthBench === 'function');
  const r = await page.evaluate((u) => window.hearthBench({ model: u, promptTokens: 16, decodeTokens: 8, wllama: true, wllamaThreads: 2 }), url);
  t.assert.ok(r.prefill_tokens_per_s > 0 && r.decode_tokens_per_s > 0, `hearth ${r.prefill_tokens_per_s} / ${r.decode_tokens_per_s}`);
  t.assert.equal(r.cross_origin_isolated, true);
  const w = r.wllama;
  t.assert.equal(w.backend, 'wllama');
  t.assert.equal(w.prompt_tokens, 16);
  t.assert.equal(w.decode_tokens, 8);
  t.assert.ok(w.prefill_tokens_per_s > 0 && w.decode_tokens_per_s > 0, `wllama ${w.prefill_tokens_per_s} / ${w.decode_tokens_per_s}`);
  t.assert.equal(w.multithread, true);
  t.log(
    `hearth ${r.prefill_tokens_per_s.toFixed(1)} / ${r.decode_tokens_per_s.toFixed(1)} tok/s, wllama ${w.prefill_tokens_per_s.toFixed(1)} / ${w.decode_tokens_per_s.toFixed(1)} tok/s (${w.threads} threads)`,
  );
  // Both sides are on the page, with a row each.
  t.assert.ok(Number(await page.textContent('#w-decode')) > 0);
  t.assert.equal(await page.locator('#runs tr').count(), 2);
}

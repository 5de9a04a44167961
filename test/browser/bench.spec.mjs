// demo/bench.html: window.hearthBench (what `hearth bench --browser` drives) and the Run button.
// Each export is a test taking the runner's context `t`; timings are checked for sign only.

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

  // The page's own Run button reuses the loaded model and fills in the numbers.
  await page.fill('#url', t.fixtures['llama-f32'].url);
  await page.fill('#prompt-tokens', '8');
  await page.fill('#decode-tokens', '4');
  await page.click('#run');
  await page.waitForFunction(() => document.querySelectorAll('#runs tr').length === 1, null, { timeout: 60_000 });
  const shown = Number(await page.textContent('#decode'));
  t.assert.ok(shown > 0, `decode tok/s shown: ${shown}`);
  t.assert.equal(await page.textContent('#error'), '');
}

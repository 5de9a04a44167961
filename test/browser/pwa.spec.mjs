// The chat page as a PWA, against a production build (vite build + vite preview, own server): a model
// loaded by URL is stored (OPFS) and, with the network off and the server gone, the page and the model
// still open and generate. Also a SHA-256 mismatch. Each export takes the runner's `t`.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A production build of demo/ in a temp dir behind `vite preview` on a free port. */
async function previewBuild(t, modelDirs) {
  const { build, preview } = await import('vite');
  const { hearthViteConfig } = await import(pathToFileURL(join(t.repo, 'vite.config.ts')).href);
  const config = hearthViteConfig({ modelDirs, port: 0 });
  const quiet = { configFile: false, logLevel: 'warn', clearScreen: false };
  const outDir = mkdtempSync(join(tmpdir(), 'hearth-pwa-'));
  try {
    // The runner's dev server set NODE_ENV=development in this process, which would make the build
    // a development one (import.meta.env.PROD false: no service worker).
    const nodeEnv = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await build({ ...config, ...quiet, mode: 'production', build: { ...config.build, outDir, emptyOutDir: true } });
    } finally {
      process.env.NODE_ENV = nodeEnv;
    }
    const server = await preview({ ...config, ...quiet, build: { ...config.build, outDir }, preview: { ...config.preview, host: 'localhost', port: 0 } });
    const { port } = server.httpServer.address();
    let closed = false;
    return {
      baseUrl: `http://localhost:${port}/`,
      async close() {
        if (!closed) await server.close().catch(() => undefined);
        closed = true;
        rmSync(outDir, { recursive: true, force: true });
      },
      async stop() {
        await server.close();
        closed = true;
      },
    };
  } catch (e) {
    rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
}

const idle = (page, timeout = 60_000) => page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout });

async function loadUrl(page, url, sha256 = '') {
  await page.fill('#url', url);
  await page.fill('#sha256', sha256);
  await page.evaluate(() => (document.body.dataset.state = 'clicked'));
  await page.click('#load');
  await idle(page);
}

export async function pwaStoresTheModelAndGeneratesOffline(t) {
  const llama = t.fixtures['llama-f32'];
  const qwen = t.fixtures['qwen2-f32'];
  const srv = await previewBuild(t, [...new Set([dirname(llama.file), dirname(qwen.file)])]);
  const context = await t.browser.newContext();
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => t.log(`[page error] ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') t.log(`[page ${m.type()}] ${m.text()}`);
    });
    await page.goto(srv.baseUrl + 'index.html');
    await page.waitForFunction(() => document.body.dataset.sw === 'active', null, { timeout: 20_000 });
    t.assert.equal(await page.getAttribute('link[rel=manifest]', 'href').then((h) => h !== null), true);

    // A wrong digest: a readable BAD_MODEL_FILE, nothing stored, the page stays usable.
    await loadUrl(page, qwen.url, '0'.repeat(64));
    t.assert.match(
      (await page.textContent('#error')) ?? '',
      /^BAD_MODEL_FILE: The model file from .*qwen2-f32.* has SHA-256 [0-9a-f]{64}, not the expected 0{64}/,
    );

    // Online: downloaded with progress, stored.
    await loadUrl(page, llama.url);
    t.assert.equal(await page.textContent('#error'), '');
    t.assert.match((await page.textContent('#store-status')) ?? '', /downloaded and stored for offline use/);
    t.assert.match((await page.textContent('#model-status')) ?? '', /loaded in/);
    const stored = await page.$$eval('#stored li', (lis) => lis.map((li) => li.dataset.url));
    t.assert.deepEqual(stored, [new URL(llama.url, srv.baseUrl).href]);

    // Network off and the server gone: the shell comes from the service worker, the model from OPFS.
    await context.setOffline(true);
    await srv.stop();
    page.on('requestfailed', (r) => t.log(`[failed] ${r.url()} ${r.failure()?.errorText}`));
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 20_000 });
    await loadUrl(page, llama.url);
    t.assert.equal(await page.textContent('#error'), '');
    t.assert.match((await page.textContent('#store-status')) ?? '', /loaded from the offline store/);
    await page.fill('#prompt', t.prompt);
    await page.fill('#max-tokens', '4');
    await page.fill('#temperature', '0');
    await page.click('#generate');
    await page.waitForFunction(() => document.body.dataset.state === 'idle' && document.querySelector('#output')?.dataset.tokens, null, { timeout: 60_000 });
    t.assert.equal(await page.textContent('#error'), '');
    t.assert.deepEqual(JSON.parse((await page.getAttribute('#output', 'data-tokens')) ?? '[]'), llama.expected.tokens.slice(0, 4));
  } finally {
    await context.close().catch(() => undefined);
    await srv.close();
  }
}

export async function chatPageLoadsADroppedFileAndDropsRejectedUrlsFromTheStore(t) {
  const fx = t.fixtures['llama-f32'];
  const page = await t.page('index.html');
  // A File dropped on the page (built in the page from the served fixture) loads without a URL.
  await page.evaluate(async (url) => {
    const bytes = await (await fetch(url)).blob();
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'dropped.gguf'));
    document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, fx.url);
  await page.waitForFunction(() => /loaded in/.test(document.querySelector('#model-status')?.textContent ?? ''), null, { timeout: 60_000 });
  t.assert.equal(await page.textContent('#error'), '');
  t.assert.equal(await page.inputValue('#url'), '');
  t.assert.equal(await page.$$eval('#stored li', (lis) => lis.length), 0);

  // A URL the engine rejects is not kept offline.
  await loadUrl(page, t.badModelUrl);
  t.assert.match((await page.textContent('#error')) ?? '', /^BAD_MODEL_FILE: Malformed GGUF file/);
  await page.waitForFunction(() => document.querySelectorAll('#stored li').length === 0, null, { timeout: 5_000 });
}

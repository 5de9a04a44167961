// Browser test runner: one Vite dev server + one headless Chromium (bench/browser.ts), every
// test/browser/*.spec.mjs in turn. A spec's exported async functions are its tests, each called
// with a context `t` (see makeContext). `node test/browser/run.mjs [name-filter]`; the last line
// of output is `N passed, N failed`, and the exit status is non-zero on any failure.

import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { register } from 'tsx/esm/api';

register();

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '../..');
const TEST_TIMEOUT_MS = 150_000;
const filter = process.argv[2] ?? '';

/** The prompt both sides generate from; the fixtures' SPM/BPE vocabularies cover plain English. */
const PROMPT = 'Once upon a time';
const MAX_TOKENS = 16;
const MODELS = ['llama-f32', 'qwen2-f32'];

const out = (s) => process.stdout.write(s + '\n');
const err = (s) => process.stderr.write(s + '\n');
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** hearth in Node (the CLI, Dawn): the tokens the worker must reproduce. */
function nodeGenerate(file) {
  const args = ['bin/hearth.js', 'generate', '--model', file, '--prompt', PROMPT, '--max-tokens', String(MAX_TOKENS), '--temperature', '0', '--json'];
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => {
      let j = null;
      try {
        j = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        /* reported below */
      }
      if (code !== 0 || !j || j.error || !Array.isArray(j.tokens))
        reject(new Error(`node bin/hearth.js ${args.slice(1).join(' ')} failed (exit ${code}):\n${stdout}\n${stderr}`));
      else resolve({ prompt: PROMPT, tokens: j.tokens, promptTokens: j.prompt_tokens, text: j.text });
    });
  });
}

function withTimeout(p, ms, what) {
  let h;
  const timeout = new Promise((_, reject) => {
    h = setTimeout(() => reject(new Error(`${what} timed out after ${secs(ms)}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(h));
}

function words(name) {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1 $2')
    .toLowerCase();
}

async function main() {
  const t0 = performance.now();
  const { fixturePath } = await import('../fixtures/models.ts');
  const { startBrowserSession } = await import('../../bench/browser.ts');

  // Fixtures, a malformed copy, and what Node generates — all before Chromium starts.
  const fixtures = {};
  for (const name of MODELS) fixtures[name] = { file: fixturePath(name) };
  const badDir = join(REPO, 'test/fixtures/out/browser');
  mkdirSync(badDir, { recursive: true });
  const good = readFileSync(fixtures['llama-f32'].file);
  // Cut inside the tensor data: the header parses, the tensors point past the end.
  writeFileSync(join(badDir, 'truncated.gguf'), good.subarray(0, Math.floor(good.byteLength / 3)));
  const expected = await Promise.all(MODELS.map((m) => nodeGenerate(fixtures[m].file)));
  MODELS.forEach((m, i) => {
    fixtures[m].url = `/models/${basename(fixtures[m].file)}`;
    fixtures[m].expected = expected[i];
  });
  err(`setup: fixtures and Node reference tokens in ${secs(performance.now() - t0)}`);

  const modelDirs = [...new Set(MODELS.map((m) => dirname(fixtures[m].file))), badDir];
  const session = await startBrowserSession({ modelDirs, verbose: process.env.HEARTH_VERBOSE === '1' });
  err(`setup: Vite at ${session.baseUrl}, Chromium ${session.browser.version()} (${secs(performance.now() - t0)})`);

  const specs = readdirSync(HERE)
    .filter((f) => f.endsWith('.spec.mjs'))
    .sort();
  let passed = 0;
  let failed = 0;
  try {
    for (const spec of specs) {
      const mod = await import(pathToFileURL(join(HERE, spec)).href);
      for (const [name, fn] of Object.entries(mod)) {
        if (typeof fn !== 'function') continue;
        const title = `${spec.replace(/\.spec\.mjs$/, '')} › ${words(name)}`;
        if (filter && !title.includes(filter) && !name.includes(filter)) continue;
        const pages = [];
        const t = {
          assert,
          repo: REPO,
          baseUrl: session.baseUrl,
          browser: session.browser,
          fixtures,
          badModelUrl: '/models/truncated.gguf',
          prompt: PROMPT,
          maxTokens: MAX_TOKENS,
          /** Vite serves repo files by absolute path; pages import the client and EngineError from here. */
          clientModule: `/@fs${join(REPO, 'src/worker/client.ts')}`,
          errorsModule: `/@fs${join(REPO, 'src/api/errors.ts')}`,
          /** A fresh page (so a fresh worker); closed after the test. */
          async page(path = 'index.html') {
            const p = await session.newPage(path);
            pages.push(p);
            return p;
          },
          log: (s) => err(`    ${s}`),
        };
        const ts = performance.now();
        try {
          await withTimeout(fn(t), TEST_TIMEOUT_MS, title);
          passed++;
          out(`✓ ${title} (${secs(performance.now() - ts)})`);
        } catch (e) {
          failed++;
          out(`✗ ${title} (${secs(performance.now() - ts)})`);
          out(String(e?.stack ?? e).replace(/^/gm, '    '));
        } finally {
          for (const p of pages) await p.close().catch(() => undefined);
        }
      }
    }
  } finally {
    await session.close();
  }
  err(`total ${secs(performance.now() - t0)}`);
  return { passed, failed };
}

let result;
try {
  result = await main();
} catch (e) {
  out(`setup failed: ${String(e?.stack ?? e)}`);
  result = { passed: 0, failed: 1 };
}
out(`${result.passed} passed, ${result.failed} failed`);
process.exit(result.failed > 0 || result.passed === 0 ? 1 : 0);

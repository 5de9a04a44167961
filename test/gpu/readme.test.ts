// README.md's Node snippet (the ```js block that imports `hearth/node`), read from the README at test
// time and run as written: after `npm run build:lib`, from a file inside this repository, so `hearth`
// and `hearth/node` resolve through package.json "exports" (a package may import itself by name).

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';

const run = promisify(execFile);
const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** The README's ```js blocks that contain `marker`. */
function readmeJsBlocks(marker: string): string[] {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!).filter((b) => b.includes(marker));
}

// test/fixtures/out is git-ignored and inside the package, so the snippet's bare specifiers resolve.
let dir = '';

beforeAll(async () => {
  // Always rebuilt: dist/ is what the snippet imports, and it must be today's src/.
  await run('npm', ['run', 'build:lib'], { cwd: REPO, maxBuffer: 64 << 20 });
  // The demo model (`npm test` writes it first; make-model skips an existing file).
  if (!existsSync(join(REPO, 'demo/models/hearth-tiny.gguf'))) await run(process.execPath, ['--import', 'tsx', 'demo/make-model.ts'], { cwd: REPO });
  dir = mkdtempSync(join(REPO, 'test/fixtures/out/readme-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("README's Node snippet runs as written and streams generated text to stdout", async () => {
  const blocks = readmeJsBlocks("'hearth/node'");
  expect(blocks, 'README.md has one ```js block that imports hearth/node').toHaveLength(1);
  const file = join(dir, 'snippet.mjs');
  writeFileSync(file, blocks[0]!);
  // Run from the repository root, as the snippet's relative model path expects; a throw exits non-zero.
  let r: { stdout: string; stderr: string };
  try {
    r = await run(process.execPath, [file], { cwd: REPO, maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    throw new Error(`the README's Node snippet exited with ${err.code}:\n${err.stdout}\n${err.stderr}`);
  }
  expect(r.stdout.trim().length, `generated text on stdout (stderr: ${r.stderr})`).toBeGreaterThan(0);
});

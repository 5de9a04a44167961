// README.md's browser snippet (the ```js block that calls createEngine), read from the README at test
// time and run in a page as written: the one change is its `'hearth'` specifier, replaced by the URL
// the dev server serves src/index.ts at. The demo serves demo/models at /models; this runner's server
// serves the test fixtures there, so the page's route for /models/hearth-tiny.gguf answers with the
// demo's file.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The README's ```js blocks that contain `marker`. */
function readmeJsBlocks(repo, marker) {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  return [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]).filter((b) => b.includes(marker));
}

/** demo/models/hearth-tiny.gguf, written by demo/make-model.ts (`npm test` runs it first; it skips an existing file). */
function demoModel(repo) {
  const file = join(repo, 'demo/models/hearth-tiny.gguf');
  if (!existsSync(file)) execFileSync(process.execPath, ['--import', 'tsx', 'demo/make-model.ts'], { cwd: repo, stdio: 'inherit' });
  return file;
}

export async function theBrowserSnippetRunsAsWrittenAndAppendsGeneratedTextToThePage(t) {
  const blocks = readmeJsBlocks(t.repo, 'createEngine');
  t.assert.equal(blocks.length, 1, 'README.md has one ```js block that calls createEngine');
  const snippet = blocks[0];
  const SPECIFIER = "'hearth'";
  t.assert.equal(snippet.split(SPECIFIER).length, 2, `the snippet names ${SPECIFIER} once`);
  const code = snippet.replace(SPECIFIER, `'${new URL(`/@fs${join(t.repo, 'src/index.ts')}`, t.baseUrl).href}'`);

  const model = demoModel(t.repo);
  const page = await t.page();
  let modelRequests = 0;
  await page.route('**/models/hearth-tiny.gguf', (route) => {
    modelRequests++;
    return route.fulfill({ path: model, contentType: 'application/octet-stream' });
  });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  // A module from a blob: its import settles when the snippet (top-level awaits included) has run.
  const r = await page.evaluate(async (source) => {
    const before = new Set(document.body.childNodes);
    const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    let error = null;
    try {
      await import(url);
    } catch (e) {
      error = String(e?.stack ?? e);
    } finally {
      URL.revokeObjectURL(url);
    }
    const added = [...document.body.childNodes].filter((n) => !before.has(n));
    return { error, added: added.map((n) => ({ text: n.nodeType === Node.TEXT_NODE, content: n.textContent })) };
  }, code);

  t.assert.equal(r.error, null, 'the snippet ran without throwing');
  t.assert.deepEqual(pageErrors, [], 'no uncaught error in the page');
  t.assert.equal(modelRequests, 1, 'the snippet fetched /models/hearth-tiny.gguf');
  t.assert.ok(
    r.added.every((n) => n.text),
    'the snippet appended only text to document.body',
  );
  const text = r.added.map((n) => n.content).join('');
  t.assert.ok(text.trim().length > 0, 'document.body gained generated text');
  t.log(`${r.added.length} appends, ${text.length} characters: ${JSON.stringify(text.slice(0, 60))}…`);
}

// `hearth bench --browser` end to end: its own production build, preview server and Chromium,
// stdout one JSON object. Each export is a test taking the runner's context `t`.

import { spawn } from 'node:child_process';

function hearth(t, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['bin/hearth.js', ...args], { cwd: t.repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function hearthBenchBrowserPrintsOneJsonObject(t) {
  const r = await hearth(t, ['bench', '--browser', '--model', t.fixtures['llama-f32'].file, '--prompt-tokens', '8', '--decode-tokens', '4', '--json']);
  t.assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.assert.equal(lines.length, 1, `stdout must be one JSON line, got:\n${r.stdout}`);
  const j = JSON.parse(lines[0]);
  t.assert.equal(j.backend, 'chromium-worker');
  t.assert.ok(j.adapter.length > 0);
  t.assert.ok(j.prefill_tokens_per_s > 0 && j.decode_tokens_per_s > 0, r.stdout);
  t.assert.equal(j.prompt_tokens, 8);
  t.assert.equal(j.decode_tokens, 4);
}

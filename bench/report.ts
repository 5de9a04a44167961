// What every benchmark script reports the same way: the machine it ran on (CPU, memory, Node, the
// commit) and its section of BENCHMARKS.md, rewritten between `<!-- NAME:start -->` and
// `<!-- NAME:end -->`. No src/ imports here, so scripts can load it before the WGSL hook.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

export function cpuModel(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'unknown CPU'}`;
}

/** The commit, and whether src/ or shaders/ differ from it (the numbers then belong to no commit). */
export function gitDescribe(): string {
  // A copy of the tree without .git (the GPU machine) is told its commit.
  if (process.env.HEARTH_GIT) return process.env.HEARTH_GIT;
  const git = (args: string[]): string => execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const head = git(['rev-parse', '--short', 'HEAD']);
    return git(['status', '--porcelain', '--', 'src', 'shaders']) === '' ? head : `${head} with uncommitted changes in src/ or shaders/`;
  } catch {
    return 'unknown';
  }
}

/** The machine fields every benchmark's JSON carries. */
export function machineInfo(): { cpu: string; cores: number; memory_gib: number; node: string; git: string } {
  return { cpu: cpuModel(), cores: cpus().length, memory_gib: totalmem() / 2 ** 30, node: process.version, git: gitDescribe() };
}

/**
 * Replace the `name` section of BENCHMARKS.md (between its markers) with `section`; a missing
 * section goes before the first section (its start marker, or a second-level heading outside
 * any) when `first`, else at the end.
 */
export function writeBenchmarksSection(name: string, section: string, opts: { first?: boolean } = {}): void {
  const path = join(REPO, 'BENCHMARKS.md');
  const text = readFileSync(path, 'utf8');
  const [start, end] = [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`];
  const block = `${start}\n${section.trimEnd()}\n${end}`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  let out: string;
  if (a >= 0 && b > a) out = text.slice(0, a) + block + text.slice(b + end.length);
  else {
    const firstOf = (needle: string): number => text.indexOf(needle);
    const h = opts.first ? Math.min(...['\n<!-- ', '\n## '].map(firstOf).filter((i) => i >= 0)) : -1;
    out = h >= 0 ? `${text.slice(0, h + 1)}${block}\n\n${text.slice(h + 1)}` : `${text.trimEnd()}\n\n${block}\n`;
  }
  writeFileSync(path, out);
}

/** The value after `--name` on the command line, or undefined. */
export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

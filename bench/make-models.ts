// Writes the benchmark models of one shape, one child process per type so that the types are
// generated in parallel (the large shape's weights take tens of seconds per type in one thread).
//
// `npx tsx bench/make-models.ts [--shape small|large] [--types f32,q8_0,q4_0,q4_k]`

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { argValue } from './report.js';
import { BENCH_SHAPES, BENCH_TYPES, ensureBenchModels, type BenchType, type ShapeName } from './models.js';

const shape = (argValue('--shape') ?? 'small') as ShapeName;
if (!(shape in BENCH_SHAPES)) throw new Error(`unknown shape ${shape}; one of ${Object.keys(BENCH_SHAPES).join(', ')}`);
const types = (argValue('--types')?.split(',') ?? [...BENCH_TYPES]) as BenchType[];
for (const t of types) if (!BENCH_TYPES.includes(t)) throw new Error(`unknown type ${t}; one of ${BENCH_TYPES.join(', ')}`);

if (types.length === 1) {
  ensureBenchModels(types, (s) => console.log(s), shape);
} else {
  const self = fileURLToPath(import.meta.url);
  const codes = await Promise.all(
    types.map(
      (t) =>
        new Promise<number | null>((res) => {
          const child = spawn(process.execPath, ['--import', 'tsx', self, '--shape', shape, '--types', t], { stdio: 'inherit' });
          child.on('close', res);
        }),
    ),
  );
  const failed = types.filter((_, i) => codes[i] !== 0);
  if (failed.length > 0) {
    console.error(`model generation failed for ${failed.join(', ')}`);
    process.exit(1);
  }
}

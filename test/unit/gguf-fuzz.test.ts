// Fuzz test for parseGGUF: seeded truncations, bit flips, byte overwrites and huge u64 counts on valid files.
// Every case must parse or throw EngineError BAD_MODEL_FILE / UNSUPPORTED_TENSOR_TYPE, with bounded reads. Add mutations to MUTATORS.

import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { bufferSource, type ByteSource } from '../../src/model/byte-source.js';
import { GGMLType, GGUFValueType, parseGGUF, type GGUFFile } from '../../src/model/gguf.js';
import { quantize } from '../../src/model/quant.js';
import { f32, u32, writeGGUF, type MetaValue, type TensorSpec } from '../fixtures/gguf-writer.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** ByteReader's read window: it asks for this much even when less is left (every ByteSource clamps). */
const READ_WINDOW_BYTES = 1 << 20;

interface Base {
  name: string;
  buf: Uint8Array;
  /** Region boundaries: [0, metaStart) header, [metaStart, tableStart) metadata, [tableStart, tableEnd) tensor table. */
  metaStart: number;
  tableStart: number;
  tableEnd: number;
  /** Offsets of every u64 field: counts, string lengths, array lengths, dims, tensor offsets. */
  u64At: number[];
  /** Offsets of every u32 field: value types, array element types, nDims, tensor types. */
  u32At: number[];
}

/** Walks a valid GGUF file (trusted) and records where its fields are. */
function mapFields(name: string, buf: Uint8Array): Base {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u64At: number[] = [8, 16];
  const u32At: number[] = [4];
  let p = 24;
  const u32 = (): number => {
    u32At.push(p);
    p += 4;
    return dv.getUint32(p - 4, true);
  };
  const u64 = (): number => {
    u64At.push(p);
    p += 8;
    return Number(dv.getBigUint64(p - 8, true));
  };
  const str = (): void => {
    const len = u64(); // read first: `p += u64()` would add to the p from before the length
    p += len;
  };
  const size: Partial<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (t: number): void => {
    if (t === GGUFValueType.STRING) return str();
    if (t === GGUFValueType.ARRAY) {
      const et = u32();
      const n = u64();
      for (let i = 0; i < n; i++) value(et);
      return;
    }
    p += size[t]!;
  };
  const nTensors = Number(dv.getBigUint64(8, true));
  const nKv = Number(dv.getBigUint64(16, true));
  for (let i = 0; i < nKv; i++) {
    str();
    value(u32());
  }
  const tableStart = p;
  for (let i = 0; i < nTensors; i++) {
    str();
    const nDims = u32();
    for (let d = 0; d < nDims; d++) u64();
    u32();
    u64();
  }
  return { name, buf, metaStart: 24, tableStart, tableEnd: p, u64At, u32At };
}

function makeBases(): Base[] {
  const rnd = mulberry32(1);
  const vals = (n: number): Float32Array => new Float32Array(n).map(() => rnd() * 2 - 1);
  const tensors = (k: number): TensorSpec[] => {
    const all: TensorSpec[] = [
      { name: 'token_embd.weight', dims: [32, 4], type: GGMLType.Q8_0, data: quantize(GGMLType.Q8_0, vals(128)) },
      { name: 'blk.0.attn_q.weight', dims: [32, 2], type: GGMLType.Q4_0, data: quantize(GGMLType.Q4_0, vals(64)) },
      { name: 'blk.0.ffn_up.weight', dims: [256], type: GGMLType.Q4_K, data: quantize(GGMLType.Q4_K, vals(256)) },
      { name: 'blk.0.ffn_down.weight', dims: [256], type: GGMLType.Q6_K, data: quantize(GGMLType.Q6_K, vals(256)) },
      { name: 'output_norm.weight', dims: [8], type: GGMLType.F32, data: quantize(GGMLType.F32, vals(8)) },
      { name: 'output.weight', dims: [4, 2], type: GGMLType.F16, data: quantize(GGMLType.F16, vals(8)) },
    ];
    return all.slice(0, k);
  };
  const meta: Record<string, MetaValue> = {
    'general.architecture': 'llama',
    'general.name': 'fuzz',
    'llama.context_length': u32(128),
    'llama.rope.freq_base': f32(10000),
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': ['<unk>', '<s>', '</s>', 'a', 'b', 'ab', '▁', 'é', ''],
    'tokenizer.ggml.scores': new Float32Array([0, 0, 0, -1, -2, -3, -4, -5, -6]),
    'tokenizer.ggml.token_type': new Int32Array([2, 3, 3, 1, 1, 1, 1, 1, 1]),
    'tokenizer.ggml.add_bos_token': true,
  };
  const few: Record<string, MetaValue> = { 'general.architecture': 'llama', 'tokenizer.ggml.tokens': ['x', 'yy', 'zzz'] };
  return [
    mapFields('v3 full', writeGGUF(meta, tensors(6))),
    mapFields('v2 full', writeGGUF(meta, tensors(6), { version: 2 })),
    mapFields('v3 align 64', writeGGUF(meta, tensors(4), { alignment: 64 })),
    mapFields('v3 small', writeGGUF(few, tensors(2))),
    mapFields('v3 no tensors', writeGGUF(meta, [])),
  ];
}

/** A 1.2 MB file: its tensor table sits past the reader's first 1 MiB window. */
function makeBigBase(): Base {
  const meta: Record<string, MetaValue> = {
    'general.architecture': 'llama',
    'tokenizer.ggml.scores': new Float32Array(260_000).map((_, i) => -i / 4),
    'tokenizer.ggml.tokens': Array.from({ length: 3000 }, (_, i) => `t${i}`),
  };
  const x = new Float32Array(256).map((_, i) => Math.sin(i));
  const t: TensorSpec[] = [
    { name: 'a', dims: [256], type: GGMLType.Q4_K, data: quantize(GGMLType.Q4_K, x) },
    { name: 'b', dims: [32, 8], type: GGMLType.Q8_0, data: quantize(GGMLType.Q8_0, x) },
  ];
  return mapFields('v3 1.2 MB', writeGGUF(meta, t));
}

type Rnd = () => number;
const int = (r: Rnd, n: number): number => Math.floor(r() * n);
const HUGE: bigint[] = [2n ** 64n - 1n, 2n ** 63n, 2n ** 62n + 1n, 2n ** 53n + 1n, 2n ** 32n, 2n ** 32n - 1n, 2n ** 31n];

/** Picks a byte in header/metadata/table (mostly), sometimes in the data. */
function pickPos(r: Rnd, b: Base): number {
  const x = r();
  if (x < 0.2) return int(r, 24);
  if (x < 0.6) return b.metaStart + int(r, b.tableStart - b.metaStart);
  if (x < 0.95) return b.tableStart + int(r, Math.max(1, b.tableEnd - b.tableStart));
  return int(r, b.buf.length);
}

/** Each mutator edits a copy of the base file and returns it with a description. */
const MUTATORS: { name: string; weight: number; run: (r: Rnd, b: Base) => { buf: Uint8Array; what: string } }[] = [
  {
    name: 'truncate',
    weight: 3,
    run: (r, b) => {
      const cut = r() < 0.8 ? int(r, b.tableEnd + 8) : int(r, b.buf.length);
      return { buf: b.buf.slice(0, cut), what: `truncate at ${cut}` };
    },
  },
  {
    name: 'flip bits',
    weight: 4,
    run: (r, b) => {
      const buf = b.buf.slice();
      const n = 1 + int(r, 6);
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = pickPos(r, b);
        buf[p] = buf[p]! ^ (1 << int(r, 8));
        at.push(p);
      }
      return { buf, what: `flip bits at ${at.join(',')}` };
    },
  },
  {
    name: 'overwrite bytes',
    weight: 3,
    run: (r, b) => {
      const buf = b.buf.slice();
      const n = 1 + int(r, 4);
      const at: number[] = [];
      for (let i = 0; i < n; i++) {
        const p = pickPos(r, b);
        buf[p] = r() < 0.3 ? 0xff : int(r, 256);
        at.push(p);
      }
      return { buf, what: `overwrite bytes at ${at.join(',')}` };
    },
  },
  {
    name: 'huge u64',
    weight: 4,
    run: (r, b) => {
      const buf = b.buf.slice();
      const p = b.u64At[int(r, b.u64At.length)]!;
      const v = r() < 0.7 ? HUGE[int(r, HUGE.length)]! : r() < 0.5 ? BigInt(b.buf.length + int(r, 64)) : BigInt(int(r, 2 ** 31)) << 32n;
      new DataView(buf.buffer).setBigUint64(p, v, true);
      return { buf, what: `u64 at ${p} := ${v}` };
    },
  },
  {
    name: 'small u64 change',
    weight: 2,
    run: (r, b) => {
      const buf = b.buf.slice();
      const p = b.u64At[int(r, b.u64At.length)]!;
      const dv = new DataView(buf.buffer);
      const v = BigInt.asUintN(64, dv.getBigUint64(p, true) + BigInt(int(r, 9) - 4));
      dv.setBigUint64(p, v, true);
      return { buf, what: `u64 at ${p} := ${v}` };
    },
  },
  {
    name: 'u32 type field',
    weight: 2,
    run: (r, b) => {
      const buf = b.buf.slice();
      const p = b.u32At[int(r, b.u32At.length)]!;
      const v = r() < 0.5 ? int(r, 40) : int(r, 2 ** 32) >>> 0;
      new DataView(buf.buffer).setUint32(p, v, true);
      return { buf, what: `u32 at ${p} := ${v}` };
    },
  },
  {
    name: 'combo',
    weight: 2,
    run: (r, b) => {
      const a = MUTATORS[3]!.run(r, b);
      const c = MUTATORS[1]!.run(r, { ...b, buf: a.buf });
      const cut = int(r, c.buf.length + 1);
      return { buf: c.buf.slice(0, cut), what: `${a.what}; ${c.what}; truncate at ${cut}` };
    },
  },
];

interface ReadStats {
  reads: number;
  maxRequested: number;
  deliveredBytes: number;
  badRange: string | undefined;
}

/** Wraps a ByteSource to record every read the parser makes. */
function countingSource(buf: Uint8Array): { src: ByteSource; stats: ReadStats } {
  const inner = bufferSource(buf);
  const stats: ReadStats = { reads: 0, maxRequested: 0, deliveredBytes: 0, badRange: undefined };
  const src: ByteSource = {
    size: inner.size,
    async read(offset, length) {
      stats.reads++;
      stats.maxRequested = Math.max(stats.maxRequested, length);
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset > inner.size)
        stats.badRange ??= `read(${offset}, ${length}) on a ${inner.size}-byte file`;
      const d = await inner.read(offset, length);
      stats.deliveredBytes += d.length;
      return d;
    },
  };
  return { src, stats };
}

/** Invariants of a successful parse. */
function checkParsed(g: GGUFFile, size: number): string | undefined {
  const names = new Set<string>();
  for (const t of g.tensors) {
    if (names.has(t.name)) return `duplicate tensor ${t.name}`;
    names.add(t.name);
    if (t.fileOffset % g.alignment !== 0) return `${t.name} misaligned`;
    if (t.fileOffset < g.dataOffset || t.fileOffset + t.sizeBytes > size) return `${t.name} out of the file`;
    if (t.numElems !== t.dims.reduce((a, b) => a * b, 1)) return `${t.name} numElems`;
  }
  if (g.fileSize !== size) return 'fileSize';
  return undefined;
}

describe('parseGGUF fuzz', () => {
  it('5,100 seeded mutations: parse, or throw EngineError BAD_MODEL_FILE / UNSUPPORTED_TENSOR_TYPE; reads bounded', async () => {
    const bases = makeBases();
    const big = makeBigBase();
    expect(big.tableStart).toBeGreaterThan(READ_WINDOW_BYTES);
    for (const b of [...bases, big]) await expect(parseGGUF(bufferSource(b.buf))).resolves.toBeDefined();
    const rnd = mulberry32(20240611);
    const totalWeight = MUTATORS.reduce((a, m) => a + m.weight, 0);
    const outcomes = new Map<string, number>();
    const failures: string[] = [];
    let maxReads = 0;
    let maxDeliveredRatio = 0;
    const N = 5100;
    for (let i = 0; i < N; i++) {
      const b = i % 51 === 50 ? big : bases[i % bases.length]!; // 100 cases on the big file
      let w = rnd() * totalWeight;
      const m = MUTATORS.find((x) => (w -= x.weight) < 0) ?? MUTATORS[0]!;
      const { buf, what } = m.run(rnd, b);
      const { src, stats } = countingSource(buf);
      const label = `case ${i} (${b.name}, ${what})`;
      let outcome: string;
      try {
        const g = await parseGGUF(src);
        const bad = checkParsed(g, buf.length);
        if (bad) failures.push(`${label}: parsed but ${bad}`);
        outcome = 'parsed';
      } catch (e) {
        if (e instanceof EngineError && (e.code === 'BAD_MODEL_FILE' || e.code === 'UNSUPPORTED_TENSOR_TYPE')) outcome = e.code;
        else {
          failures.push(`${label}: threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
          outcome = 'other';
        }
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (stats.badRange) failures.push(`${label}: ${stats.badRange}`);
      // No read may ask for more than the file holds: a length taken from a corrupt count would show up
      // here first, before any allocation of that size. (ByteReader asks for its whole 1 MiB window
      // even from a smaller file; every ByteSource clamps that, so small files are held to the window.)
      if (stats.maxRequested > Math.max(buf.length, READ_WINDOW_BYTES))
        failures.push(`${label}: a read asked for ${stats.maxRequested} bytes of a ${buf.length}-byte file`);
      // Bounded work: a few reads and at most twice the file's bytes per parse (measured: at most 2 reads, 1.0x).
      if (stats.reads > 4 || stats.deliveredBytes > 2 * Math.max(buf.length, 1))
        failures.push(`${label}: ${stats.reads} reads, ${stats.deliveredBytes} bytes delivered for a ${buf.length}-byte file`);
      maxReads = Math.max(maxReads, stats.reads);
      maxDeliveredRatio = Math.max(maxDeliveredRatio, stats.deliveredBytes / Math.max(buf.length, 1));
    }
    expect(failures.slice(0, 10)).toEqual([]);
    // The mix must exercise every outcome, or the mutations have stopped reaching the parser's checks.
    expect(outcomes.get('parsed') ?? 0).toBeGreaterThan(50);
    expect(outcomes.get('BAD_MODEL_FILE') ?? 0).toBeGreaterThan(500);
    expect(outcomes.get('UNSUPPORTED_TENSOR_TYPE') ?? 0).toBeGreaterThan(5);
    expect(maxReads).toBeLessThanOrEqual(4);
    expect(maxDeliveredRatio).toBeLessThanOrEqual(2);
  });
});

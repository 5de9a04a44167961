// Tests for the GGUF parser (src/model/gguf.ts): v2/v3 files, every metadata type, alignment, tensor tables, each error.
// Files come from test/fixtures/gguf-writer.ts, or from the small raw builder below where the writer cannot express a case.

import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { GGML_TYPES, GGMLType, GGUFValueType, parseGGUF, type GGUFFile } from '../../src/model/gguf.js';
import { quantize } from '../../src/model/quant.js';
import { f32, i32, u32, u64, writeGGUF, type MetaValue, type TensorSpec } from '../fixtures/gguf-writer.js';

/** Little-endian byte builder for hand-made GGUF files. */
class Raw {
  private out: number[] = [];
  private readonly tmp = new DataView(new ArrayBuffer(8));
  get pos(): number {
    return this.out.length;
  }
  private push(n: number): this {
    for (let i = 0; i < n; i++) this.out.push(this.tmp.getUint8(i));
    return this;
  }
  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    this.tmp.setUint16(0, v & 0xffff, true);
    return this.push(2);
  }
  u32(v: number): this {
    this.tmp.setUint32(0, v >>> 0, true);
    return this.push(4);
  }
  u64(v: bigint | number): this {
    this.tmp.setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
    return this.push(8);
  }
  f32(v: number): this {
    this.tmp.setFloat32(0, v, true);
    return this.push(4);
  }
  f64(v: number): this {
    this.tmp.setFloat64(0, v, true);
    return this.push(8);
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    for (const x of b) this.out.push(x);
    return this;
  }
  pad(align: number): this {
    while (this.out.length % align !== 0) this.out.push(0);
    return this;
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.out.push(0);
    return this;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

/** A header with the given counts; the caller appends metadata entries and tensor infos. */
function rawHeader(nTensors: number | bigint, nKv: number | bigint, version = 3): Raw {
  return new Raw().u32(0x46554747).u32(version).u64(nTensors).u64(nKv);
}

const parse = (buf: Uint8Array): Promise<GGUFFile> => parseGGUF(bufferSource(buf));

async function parseError(buf: Uint8Array): Promise<EngineError> {
  try {
    await parse(buf);
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected the parser to refuse this file, but it parsed');
}

function tensorData(type: GGMLType, numElems: number, seed: number): Uint8Array {
  const x = new Float32Array(numElems);
  for (let i = 0; i < numElems; i++) x[i] = Math.sin(seed * 1000 + i * 0.37);
  return quantize(type, x);
}

/** Byte offset of tensor `name`'s info record (its name's length prefix): searched from the end, past the metadata. */
function tensorInfoAt(buf: Uint8Array, name: string): { at: number; nDimsAt: number; dimsAt: number; typeAt: number; offsetAt: number } {
  const needle = new Raw().str(name).done();
  for (let at = buf.length - needle.length; at >= 0; at--) {
    let hit = true;
    for (let k = 0; k < needle.length && hit; k++) hit = buf[at + k] === needle[k];
    if (!hit) continue;
    const nDimsAt = at + needle.length;
    const nDims = new DataView(buf.buffer, buf.byteOffset).getUint32(nDimsAt, true);
    return { at, nDimsAt, dimsAt: nDimsAt + 4, typeAt: nDimsAt + 4 + 8 * nDims, offsetAt: nDimsAt + 8 + 8 * nDims };
  }
  throw new Error(`tensor info for '${name}' not found`);
}
const setU32 = (buf: Uint8Array, at: number, v: number): void => new DataView(buf.buffer, buf.byteOffset).setUint32(at, v, true);
const setU64 = (buf: Uint8Array, at: number, v: bigint | number): void => new DataView(buf.buffer, buf.byteOffset).setBigUint64(at, BigInt(v), true);
const getU64 = (buf: Uint8Array, at: number): number => Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(at, true));

const META: Record<string, MetaValue> = {
  'general.architecture': 'llama',
  'general.name': 'tiny ✓ héllo',
  'test.u8': { t: 'u8', v: 200 },
  'test.i8': { t: 'i8', v: -100 },
  'test.u16': { t: 'u16', v: 60000 },
  'test.i16': { t: 'i16', v: -30000 },
  'test.u32': u32(4_000_000_000),
  'test.i32': i32(-2_000_000_000),
  'test.f32': f32(0.1),
  'test.bool.t': true,
  'test.bool.f': false,
  'test.u64': u64(2 ** 40),
  'test.u64.big': u64(2 ** 60),
  'test.i64': { t: 'i64', v: -(2 ** 40) },
  'test.f64': { t: 'f64', v: Math.PI },
  'test.str.empty': '',
  'tokenizer.ggml.tokens': ['<s>', '</s>', 'a', 'ab', '', 'é', '▁the'],
  'tokenizer.ggml.scores': new Float32Array([0, -1.5, 2.25]),
  'test.arr.i32': new Int32Array([-1, 0, 2147483647]),
  'test.arr.u32': new Uint32Array([0, 4294967295]),
  'test.arr_u32': { t: 'arr_u32', v: [7, 8, 9] },
};

function sampleTensors(): TensorSpec[] {
  return [
    { name: 'tok_embd.weight', dims: [64, 3], type: GGMLType.F32, data: tensorData(GGMLType.F32, 192, 1) },
    { name: 'blk.0.attn_q.weight', dims: [64, 2], type: GGMLType.Q4_0, data: tensorData(GGMLType.Q4_0, 128, 2) },
    { name: 'blk.0.ffn_up.weight', dims: [256, 2], type: GGMLType.Q4_K, data: tensorData(GGMLType.Q4_K, 512, 3) },
    { name: 'blk.0.ffn_down.weight', dims: [256], type: GGMLType.Q6_K, data: tensorData(GGMLType.Q6_K, 256, 4) },
    { name: 'blk.0.attn_k.weight', dims: [32, 3], type: GGMLType.Q8_0, data: tensorData(GGMLType.Q8_0, 96, 5) },
    { name: 'output_norm.weight', dims: [5], type: GGMLType.F16, data: tensorData(GGMLType.F16, 5, 6) },
  ];
}

describe('parseGGUF: valid files', () => {
  for (const version of [2, 3] as const) {
    it(`v${version}: header, every scalar metadata type, string and number arrays`, async () => {
      const buf = writeGGUF(META, sampleTensors(), { version });
      const g = await parse(buf);
      expect(g.version).toBe(version);
      expect(g.fileSize).toBe(buf.length);
      expect(g.alignment).toBe(32);
      const m = g.metadata;
      expect(m.size).toBe(Object.keys(META).length);
      expect(m.get('general.architecture')).toBe('llama');
      expect(m.get('general.name')).toBe('tiny ✓ héllo');
      expect(m.get('test.u8')).toBe(200);
      expect(m.get('test.i8')).toBe(-100);
      expect(m.get('test.u16')).toBe(60000);
      expect(m.get('test.i16')).toBe(-30000);
      expect(m.get('test.u32')).toBe(4_000_000_000);
      expect(m.get('test.i32')).toBe(-2_000_000_000);
      expect(m.get('test.f32')).toBe(Math.fround(0.1));
      expect(m.get('test.bool.t')).toBe(true);
      expect(m.get('test.bool.f')).toBe(false);
      expect(m.get('test.u64')).toBe(2 ** 40);
      expect(m.get('test.u64.big')).toBe(2n ** 60n); // beyond 2^53: kept exact as a bigint
      expect(m.get('test.i64')).toBe(-(2 ** 40));
      expect(m.get('test.f64')).toBe(Math.PI);
      expect(m.get('test.str.empty')).toBe('');
      expect(m.get('tokenizer.ggml.tokens')).toEqual(['<s>', '</s>', 'a', 'ab', '', 'é', '▁the']);
      expect(m.get('tokenizer.ggml.scores')).toEqual(new Float32Array([0, -1.5, 2.25]));
      expect(m.get('test.arr.i32')).toEqual(new Int32Array([-1, 0, 2147483647]));
      expect(m.get('test.arr.u32')).toEqual(new Uint32Array([0, 4294967295]));
      expect(m.get('test.arr_u32')).toEqual(new Uint32Array([7, 8, 9]));
    });
  }

  it('arrays of every element type, bools, empty arrays and nested arrays', async () => {
    const kvs: [string, (r: Raw) => void][] = [
      ['a.u8', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.UINT8).u64(3).u8(0).u8(1).u8(255)],
      ['a.i8', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.INT8).u64(2).u8(-128).u8(127)],
      ['a.u16', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.UINT16).u64(2).u16(1).u16(65535)],
      ['a.i16', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.INT16).u64(2).u16(-32768).u16(32767)],
      ['a.u32', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.UINT32).u64(1).u32(0xdeadbeef)],
      ['a.i32', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.INT32).u64(1).u32(-5)],
      ['a.f32', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.FLOAT32).u64(2).f32(1.5).f32(-0)],
      ['a.bool', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.BOOL).u64(3).u8(1).u8(0).u8(2)],
      [
        'a.u64',
        (r) =>
          r
            .u32(GGUFValueType.ARRAY)
            .u32(GGUFValueType.UINT64)
            .u64(2)
            .u64(1)
            .u64(2n ** 64n - 1n),
      ],
      [
        'a.i64',
        (r) =>
          r
            .u32(GGUFValueType.ARRAY)
            .u32(GGUFValueType.INT64)
            .u64(2)
            .u64(-1n)
            .u64(2n ** 62n),
      ],
      ['a.f64', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.FLOAT64).u64(2).f64(Math.E).f64(-1e300)],
      ['a.str', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.STRING).u64(3).str('x').str('').str('yz')],
      ['a.empty', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.UINT32).u64(0)],
      ['a.empty.str', (r) => r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.STRING).u64(0)],
      [
        'a.nested',
        (r) => {
          r.u32(GGUFValueType.ARRAY).u32(GGUFValueType.ARRAY).u64(3);
          r.u32(GGUFValueType.UINT32).u64(2).u32(1).u32(2);
          r.u32(GGUFValueType.STRING).u64(1).str('n');
          r.u32(GGUFValueType.ARRAY).u64(1).u32(GGUFValueType.INT8).u64(1).u8(-1); // three levels deep
        },
      ],
      ['s.u8', (r) => r.u32(GGUFValueType.UINT8).u8(7)],
      ['s.bool', (r) => r.u32(GGUFValueType.BOOL).u8(1)],
      ['s.i64.big', (r) => r.u32(GGUFValueType.INT64).u64(-(2n ** 60n))],
      ['s.u64.max', (r) => r.u32(GGUFValueType.UINT64).u64(2n ** 64n - 1n)],
    ];
    const r = rawHeader(0, kvs.length);
    for (const [k, w] of kvs) {
      r.str(k);
      w(r);
    }
    const g = await parse(r.done());
    const m = g.metadata;
    expect(m.get('a.u8')).toEqual(new Uint8Array([0, 1, 255]));
    expect(m.get('a.i8')).toEqual(new Int8Array([-128, 127]));
    expect(m.get('a.u16')).toEqual(new Uint16Array([1, 65535]));
    expect(m.get('a.i16')).toEqual(new Int16Array([-32768, 32767]));
    expect(m.get('a.u32')).toEqual(new Uint32Array([0xdeadbeef]));
    expect(m.get('a.i32')).toEqual(new Int32Array([-5]));
    expect(m.get('a.f32')).toEqual(new Float32Array([1.5, -0]));
    expect(m.get('a.bool')).toEqual([true, false, true]);
    expect(m.get('a.u64')).toEqual(new BigUint64Array([1n, 2n ** 64n - 1n]));
    expect(m.get('a.i64')).toEqual(new BigInt64Array([-1n, 2n ** 62n]));
    expect(m.get('a.f64')).toEqual(new Float64Array([Math.E, -1e300]));
    expect(m.get('a.str')).toEqual(['x', '', 'yz']);
    expect(m.get('a.empty')).toEqual(new Uint32Array(0));
    expect(m.get('a.empty.str')).toEqual([]);
    expect(m.get('a.nested')).toEqual([new Uint32Array([1, 2]), ['n'], [new Int8Array([-1])]]);
    expect(m.get('s.u8')).toBe(7);
    expect(m.get('s.bool')).toBe(true);
    expect(m.get('s.i64.big')).toBe(-(2n ** 60n));
    expect(m.get('s.u64.max')).toBe(2n ** 64n - 1n);
    expect(g.tensors).toEqual([]);
  });

  it('tensor offsets and sizes for every supported type; data found at fileOffset', async () => {
    const tensors = sampleTensors();
    const buf = writeGGUF({ 'general.architecture': 'llama' }, tensors);
    const g = await parse(buf);
    expect(g.dataOffset % 32).toBe(0);
    expect(g.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    let rel = 0;
    tensors.forEach((spec, i) => {
      const t = g.tensors[i]!;
      const info = GGML_TYPES.get(spec.type)!;
      const numElems = spec.dims.reduce((a, b) => a * b, 1);
      expect(t.dims).toEqual(spec.dims);
      expect(t.type).toBe(spec.type);
      expect(t.numElems).toBe(numElems);
      expect(t.sizeBytes).toBe((numElems / info.blockElems) * info.blockBytes);
      expect(t.sizeBytes).toBe(spec.data.length);
      expect(t.fileOffset).toBe(g.dataOffset + rel);
      expect(t.fileOffset % 32).toBe(0);
      expect(Array.from(buf.subarray(t.fileOffset, t.fileOffset + t.sizeBytes))).toEqual(Array.from(spec.data));
      rel += Math.ceil(spec.data.length / 32) * 32;
    });
  });

  it('custom alignment (general.alignment = 64)', async () => {
    const tensors = sampleTensors();
    const buf = writeGGUF({ 'general.architecture': 'llama' }, tensors, { alignment: 64 });
    const g = await parse(buf);
    expect(g.alignment).toBe(64);
    expect(g.metadata.get('general.alignment')).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    for (const [i, t] of g.tensors.entries()) {
      expect(t.fileOffset % 64).toBe(0);
      expect(Array.from(buf.subarray(t.fileOffset, t.fileOffset + t.sizeBytes))).toEqual(Array.from(tensors[i]!.data));
    }
    // stored as u64 instead of u32, as some writers do
    const r = rawHeader(1, 1).str('general.alignment').u32(GGUFValueType.UINT64).u64(64);
    r.str('w').u32(1).u64(8).u32(GGMLType.F32).u64(0).pad(64).zeros(32);
    const g2 = await parse(r.done());
    expect(g2.alignment).toBe(64);
    expect(g2.tensors[0]!.fileOffset).toBe(g2.dataOffset);
    expect(g2.dataOffset).toBe(64 * Math.ceil((24 + 8 + 17 + 4 + 8 + 8 + 1 + 4 + 8 + 4 + 8) / 64));
  });

  it('parses known-but-unsupported types (hearth refuses them at load, not here)', async () => {
    const buf = writeGGUF({}, [{ name: 'q5k', dims: [256], type: GGMLType.Q5_K, data: new Uint8Array(176) }]);
    const g = await parse(buf);
    expect(g.tensors[0]).toMatchObject({ type: GGMLType.Q5_K, sizeBytes: 176, numElems: 256 });
  });

  it('reads across the 1 MiB read window: a string array straddling it, a 1.3 MB string, a 3.4 MB file', async () => {
    // 1 MB of scores first, so the token strings cross the reader's 1 MiB window boundary.
    const scores = new Float32Array(255_000).map((_, i) => i / 8);
    const tokens = Array.from({ length: 4000 }, (_, i) => `tok${i}`);
    const long = 'é'.repeat(650_000); // 1.3 MB: read in one piece, past the window
    const big = tensorData(GGMLType.F32, 1 << 18, 9);
    const buf = writeGGUF({ 'a.scores': scores, 'a.tokens': tokens, 'a.long': long }, [{ name: 'big', dims: [1024, 256], type: GGMLType.F32, data: big }]);
    expect(buf.length).toBeGreaterThan(3 << 20);
    const g = await parse(buf);
    expect(g.metadata.get('a.scores')).toEqual(scores);
    expect(g.metadata.get('a.tokens')).toEqual(tokens);
    expect(g.metadata.get('a.long')).toBe(long);
    expect(g.tensors[0]!.fileOffset + g.tensors[0]!.sizeBytes).toBe(buf.length);
  });
});

describe('parseGGUF: errors', () => {
  const base = (): Uint8Array => writeGGUF(META, sampleTensors());

  it('bad magic', async () => {
    const buf = base();
    buf[0] = 0x47 ^ 0xff;
    const e = await parseError(buf);
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.message).toMatch(/not a GGUF file/);
  });

  it('bad version (1, 4, and a big-endian v3)', async () => {
    for (const v of [1, 4, 0x03000000]) {
      const buf = base();
      setU32(buf, 4, v);
      const e = await parseError(buf);
      expect(e.code).toBe('BAD_MODEL_FILE');
      expect(e.details.version).toBe(v);
      expect(e.message).toMatch(/version/);
    }
  });

  it('truncated at every byte up to the end of the last tensor; the trailing padding may go', async () => {
    const buf = writeGGUF(META, sampleTensors());
    const g = await parse(buf);
    const dataEnd = Math.max(...g.tensors.map((t) => t.fileOffset + t.sizeBytes));
    const tiStart = tensorInfoAt(buf, 'tok_embd.weight').at;
    const regions = { header: [0, 24], metadata: [24, tiStart], tensorTable: [tiStart, g.dataOffset], data: [g.dataOffset, dataEnd] };
    const seen = new Set<string>();
    for (let cut = 0; cut < buf.length; cut++) {
      const part = buf.slice(0, cut);
      if (cut >= dataEnd) {
        await expect(parse(part)).resolves.toBeDefined();
        continue;
      }
      const e = await parseError(part);
      expect(e.code).toBe('BAD_MODEL_FILE');
      for (const [name, [a, b]] of Object.entries(regions)) if (cut >= a! && cut < b!) seen.add(name);
    }
    expect([...seen].sort()).toEqual(['data', 'header', 'metadata', 'tensorTable']);
  });

  it('tensor data past the end of the file', async () => {
    const buf = base();
    const g = await parse(buf);
    const last = tensorInfoAt(buf, 'output_norm.weight');
    // an aligned offset whose data runs 32 bytes past the end
    const past = Math.floor((buf.length - g.dataOffset) / 32) * 32;
    setU64(buf, last.offsetAt, past);
    let e = await parseError(buf);
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.details.tensor).toBe('output_norm.weight');
    expect(e.message).toMatch(/needs bytes .* but the file has/);
    // an offset beyond the file itself
    setU64(buf, last.offsetAt, 2 ** 40);
    e = await parseError(buf);
    expect(e.message).toMatch(/past the end of the file/);
    // dims that make a tensor larger than the file
    const buf2 = base();
    setU64(buf2, tensorInfoAt(buf2, 'tok_embd.weight').dimsAt + 8, 1000);
    e = await parseError(buf2);
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.details).toMatchObject({ tensor: 'tok_embd.weight', fileSize: buf2.length });
    expect(e.message).toMatch(/F32, 64x1000\) needs bytes/);
  });

  it('unknown tensor type → UNSUPPORTED_TENSOR_TYPE naming the tensor and the offset', async () => {
    const buf = base();
    const info = tensorInfoAt(buf, 'blk.0.ffn_up.weight');
    setU32(buf, info.typeAt, 99);
    const e = await parseError(buf);
    expect(e.code).toBe('UNSUPPORTED_TENSOR_TYPE');
    expect(e.details).toMatchObject({ tensor: 'blk.0.ffn_up.weight', type: 99, offset: info.at });
    expect(e.message).toContain("'blk.0.ffn_up.weight'");
    expect(e.message).toContain(`byte ${info.at}`);
  });

  it('misaligned tensor offset', async () => {
    const buf = base();
    const info = tensorInfoAt(buf, 'blk.0.attn_q.weight');
    setU64(buf, info.offsetAt, getU64(buf, info.offsetAt) + 16);
    const e = await parseError(buf);
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.message).toMatch(/not aligned to 32/);
    expect(e.details.offset).toBe(info.at);
  });

  it('duplicate tensor names', async () => {
    const t = sampleTensors();
    const buf = writeGGUF({}, [t[0]!, { ...t[1]!, name: t[0]!.name }]);
    const e = await parseError(buf);
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.message).toMatch(/'tok_embd.weight' appears twice/);
  });

  it('duplicate metadata keys (llama.cpp refuses them too)', async () => {
    const r = rawHeader(0, 2).str('k').u32(GGUFValueType.UINT32).u32(1).str('k').u32(GGUFValueType.UINT32).u32(2);
    const e = await parseError(r.done());
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.message).toMatch(/'k' appears twice/);
  });

  it('counts and lengths larger than the file', async () => {
    const cases: [string, Uint8Array][] = [
      [
        'tensor count 2^64-1',
        rawHeader(2n ** 64n - 1n, 0)
          .zeros(64)
          .done(),
      ],
      [
        'metadata count 2^63',
        rawHeader(0, 2n ** 63n)
          .zeros(64)
          .done(),
      ],
      ['metadata count just over what fits', rawHeader(0, 10).zeros(100).done()],
      [
        'key length 2^40',
        rawHeader(0, 1)
          .u64(2 ** 40)
          .zeros(64)
          .done(),
      ],
      [
        'string value length 2^62',
        rawHeader(0, 1)
          .str('k')
          .u32(GGUFValueType.STRING)
          .u64(2n ** 62n)
          .zeros(16)
          .done(),
      ],
      [
        'array count 2^50',
        rawHeader(0, 1)
          .str('k')
          .u32(GGUFValueType.ARRAY)
          .u32(GGUFValueType.UINT32)
          .u64(2 ** 50)
          .zeros(16)
          .done(),
      ],
      ['array count just past the end', rawHeader(0, 1).str('k').u32(GGUFValueType.ARRAY).u32(GGUFValueType.UINT32).u64(5).zeros(16).done()],
      ['string array count', rawHeader(0, 1).str('k').u32(GGUFValueType.ARRAY).u32(GGUFValueType.STRING).u64(3).zeros(16).done()],
      ['nested array count', rawHeader(0, 1).str('k').u32(GGUFValueType.ARRAY).u32(GGUFValueType.ARRAY).u64(2).zeros(16).done()],
      [
        'tensor dim 2^63',
        rawHeader(1, 0)
          .str('t')
          .u32(1)
          .u64(2n ** 63n)
          .u32(0)
          .u64(0)
          .zeros(64)
          .done(),
      ],
    ];
    for (const [what, buf] of cases) {
      const e = await parseError(buf);
      expect(e.code, what).toBe('BAD_MODEL_FILE');
    }
  });

  it('malformed metadata and tensor infos', async () => {
    const kv = (w: (r: Raw) => void, key = 'k'): Uint8Array => {
      const r = rawHeader(0, 1).str(key);
      w(r);
      return r.zeros(32).done();
    };
    const nest = (levels: number): Uint8Array =>
      kv((r) => {
        r.u32(GGUFValueType.ARRAY); // the value's type; then each level is (element type, count)
        for (let i = 0; i < levels; i++) r.u32(GGUFValueType.ARRAY).u64(1);
        r.u32(GGUFValueType.UINT8).u64(0);
      });
    const tensor = (nDims: number, dims: number[], type = GGMLType.F32): Uint8Array => {
      const r = rawHeader(1, 0).str('t').u32(nDims);
      for (const d of dims) r.u64(d);
      return r.u32(type).u64(0).pad(32).zeros(4096).done();
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ['unknown value type', kv((r) => r.u32(13).u32(0)), /value type 13 is unknown/],
      ['unknown array element type', kv((r) => r.u32(GGUFValueType.ARRAY).u32(13).u64(1)), /element type 13/],
      ['arrays nested too deeply', nest(3), /nested too deeply/],
      ['alignment 48', kv((r) => r.u32(GGUFValueType.UINT32).u32(48), 'general.alignment'), /alignment/],
      ['alignment 0', kv((r) => r.u32(GGUFValueType.UINT32).u32(0), 'general.alignment'), /alignment/],
      ['alignment 2^17', kv((r) => r.u32(GGUFValueType.UINT32).u32(2 ** 17), 'general.alignment'), /alignment/],
      ['alignment as a string', kv((r) => r.u32(GGUFValueType.STRING).str('32'), 'general.alignment'), /alignment/],
      ['0 dimensions', tensor(0, []), /0 dimensions/],
      ['5 dimensions', tensor(5, [1, 1, 1, 1, 1]), /5 dimensions/],
      ['a zero dimension', tensor(2, [4, 0]), /dimension 1 is 0/],
      ['row not a whole block', tensor(1, [16], GGMLType.Q4_0), /not a multiple of the Q4_0 block/],
      ['file shorter than a header', new Uint8Array(23), /smaller than a GGUF header/],
    ];
    for (const [what, buf, re] of cases) {
      const e = await parseError(buf);
      expect(e.code, what).toBe('BAD_MODEL_FILE');
      expect(e.message, what).toMatch(re);
    }
    // two levels of nesting below the top array are fine
    await expect(parse(nest(2))).resolves.toBeDefined();
  });
});

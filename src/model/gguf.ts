// GGUF container parser (v2, v3): header, metadata, tensor infos, alignment, from any ByteSource.
// Tensor data is not read here; see weights.ts. New ggml types go in GGML_TYPES below.

import { EngineError } from '../api/errors.js';
import { ByteReader, type ByteSource } from './byte-source.js';

export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

export interface GGMLTypeInfo {
  name: string;
  blockElems: number;
  blockBytes: number;
  /** Whether hearth's kernels read this type. */
  supported: boolean;
}

export const GGML_TYPES: ReadonlyMap<number, GGMLTypeInfo> = new Map([
  [GGMLType.F32, { name: 'F32', blockElems: 1, blockBytes: 4, supported: true }],
  [GGMLType.F16, { name: 'F16', blockElems: 1, blockBytes: 2, supported: true }],
  [GGMLType.Q4_0, { name: 'Q4_0', blockElems: 32, blockBytes: 18, supported: true }],
  [GGMLType.Q4_1, { name: 'Q4_1', blockElems: 32, blockBytes: 20, supported: false }],
  [GGMLType.Q5_0, { name: 'Q5_0', blockElems: 32, blockBytes: 22, supported: false }],
  [GGMLType.Q5_1, { name: 'Q5_1', blockElems: 32, blockBytes: 24, supported: false }],
  [GGMLType.Q8_0, { name: 'Q8_0', blockElems: 32, blockBytes: 34, supported: true }],
  [GGMLType.Q8_1, { name: 'Q8_1', blockElems: 32, blockBytes: 36, supported: false }],
  [GGMLType.Q2_K, { name: 'Q2_K', blockElems: 256, blockBytes: 84, supported: false }],
  [GGMLType.Q3_K, { name: 'Q3_K', blockElems: 256, blockBytes: 110, supported: false }],
  [GGMLType.Q4_K, { name: 'Q4_K', blockElems: 256, blockBytes: 144, supported: true }],
  [GGMLType.Q5_K, { name: 'Q5_K', blockElems: 256, blockBytes: 176, supported: false }],
  [GGMLType.Q6_K, { name: 'Q6_K', blockElems: 256, blockBytes: 210, supported: true }],
  [GGMLType.Q8_K, { name: 'Q8_K', blockElems: 256, blockBytes: 292, supported: false }],
  [GGMLType.BF16, { name: 'BF16', blockElems: 1, blockBytes: 2, supported: false }],
]);

export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

export type GGUFScalar = number | bigint | boolean | string;
export type GGUFValue =
  | GGUFScalar
  | string[]
  | boolean[]
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | GGUFValue[];

export interface GGUFTensorInfo {
  name: string;
  /** ggml order: dims[0] is the contiguous (innermost) dimension. */
  dims: number[];
  type: GGMLType;
  /** Offset of the tensor's data from the start of the file. */
  fileOffset: number;
  sizeBytes: number;
  numElems: number;
}

export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFValue>;
  tensors: GGUFTensorInfo[];
  alignment: number;
  /** File offset where the tensor data section starts. */
  dataOffset: number;
  fileSize: number;
}

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_DIMS = 4;
const MAX_KEY_BYTES = 65536;

function bad(msg: string, offset: number, extra: Record<string, number | string> = {}): EngineError {
  return new EngineError('BAD_MODEL_FILE', `Malformed GGUF file: ${msg} (at byte offset ${offset}).`, {
    offset,
    ...extra,
  });
}

/** Parse a GGUF header and tensor table. Every length is checked against the file size first. */
export async function parseGGUF(src: ByteSource): Promise<GGUFFile> {
  const r = new ByteReader(src);
  const fileSize = src.size;
  if (fileSize < 24) throw bad(`file is ${fileSize} bytes, smaller than a GGUF header`, 0, { fileSize });
  const magic = await r.u32();
  if (magic !== GGUF_MAGIC) throw bad(`not a GGUF file (magic 0x${magic.toString(16)})`, 0);
  const version = await r.u32();
  if (version !== 2 && version !== 3) throw bad(`GGUF version ${version} is not supported (2 and 3 are)`, 4, { version });
  const nTensors = await r.count('tensor count', 8);
  const nKv = await r.count('metadata count', 8);
  // Each metadata entry takes at least 8+1+4 bytes, each tensor info at least 8+1+4+8+8.
  if (nKv * 13 + nTensors * 29 > fileSize - r.pos)
    throw bad(`header claims ${nKv} metadata entries and ${nTensors} tensors, more than the file could hold`, 8, {
      nKv,
      nTensors,
      fileSize,
    });

  const metadata = new Map<string, GGUFValue>();
  for (let i = 0; i < nKv; i++) {
    const at = r.pos;
    const key = await readString(r, MAX_KEY_BYTES);
    // llama.cpp refuses repeated keys too; taking the last one silently would hide which value is meant.
    if (metadata.has(key)) throw bad(`metadata key '${key}' appears twice`, at);
    const vtype = await r.u32();
    const value = await readValue(r, vtype, at, 0);
    metadata.set(key, value);
  }

  let alignment = 32;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    if (typeof al !== 'number' || !Number.isInteger(al) || al <= 0 || (al & (al - 1)) !== 0 || al > 65536)
      throw bad(`general.alignment ${String(al)} is not a power of two`, r.pos);
    alignment = al;
  }

  type Raw = { name: string; dims: number[]; type: number; rel: number; at: number };
  const raws: Raw[] = [];
  for (let i = 0; i < nTensors; i++) {
    const at = r.pos;
    const name = await readString(r, MAX_KEY_BYTES);
    const nDims = await r.u32();
    if (nDims === 0 || nDims > MAX_DIMS) throw bad(`tensor '${name}' has ${nDims} dimensions`, at, { nDims });
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const v = await r.u64();
      if (v <= 0n || v > BigInt(fileSize) * 2n) throw bad(`tensor '${name}' dimension ${d} is ${v}`, at, { tensor: name });
      dims.push(Number(v));
    }
    const type = await r.u32();
    const rel = await r.u64();
    if (rel > BigInt(fileSize)) throw bad(`tensor '${name}' data offset ${rel} is past the end of the file`, at);
    raws.push({ name, dims, type, rel: Number(rel), at });
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;

  const tensors: GGUFTensorInfo[] = [];
  const seen = new Set<string>();
  for (const t of raws) {
    if (seen.has(t.name)) throw bad(`tensor '${t.name}' appears twice`, t.at);
    seen.add(t.name);
    const info = GGML_TYPES.get(t.type);
    if (!info)
      throw new EngineError(
        'UNSUPPORTED_TENSOR_TYPE',
        `Tensor '${t.name}' (tensor info at byte ${t.at}) has ggml type ${t.type}, which hearth does not know. Supported: F32, F16, Q8_0, Q4_0, Q4_K, Q6_K.`,
        { tensor: t.name, type: t.type, offset: t.at },
      );
    const numElems = t.dims.reduce((a, b) => a * b, 1);
    if (t.dims[0]! % info.blockElems !== 0)
      throw bad(`tensor '${t.name}' row length ${t.dims[0]} is not a multiple of the ${info.name} block (${info.blockElems})`, t.at);
    const sizeBytes = (numElems / info.blockElems) * info.blockBytes;
    if (t.rel % alignment !== 0) throw bad(`tensor '${t.name}' data offset ${t.rel} is not aligned to ${alignment}`, t.at);
    const fileOffset = dataOffset + t.rel;
    if (!Number.isSafeInteger(sizeBytes) || fileOffset + sizeBytes > fileSize)
      throw bad(
        `tensor '${t.name}' (${info.name}, ${t.dims.join('x')}) needs bytes ${fileOffset}..${fileOffset + sizeBytes} but the file has ${fileSize}`,
        t.at,
        {
          tensor: t.name,
          fileSize,
          needed: fileOffset + sizeBytes,
        },
      );
    tensors.push({ name: t.name, dims: t.dims, type: t.type, fileOffset, sizeBytes, numElems });
  }
  return { version, metadata, tensors, alignment, dataOffset, fileSize };
}

async function readString(r: ByteReader, maxBytes: number): Promise<string> {
  const at = r.pos;
  const len = await r.u64();
  if (len > BigInt(Math.min(maxBytes, r.remaining))) throw bad(`string of ${len} bytes where at most ${Math.min(maxBytes, r.remaining)} fit`, at);
  const bytes = await r.bytes(Number(len));
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

const SCALAR_SIZE: Partial<Record<GGUFValueType, number>> = {
  [GGUFValueType.UINT8]: 1,
  [GGUFValueType.INT8]: 1,
  [GGUFValueType.UINT16]: 2,
  [GGUFValueType.INT16]: 2,
  [GGUFValueType.UINT32]: 4,
  [GGUFValueType.INT32]: 4,
  [GGUFValueType.FLOAT32]: 4,
  [GGUFValueType.BOOL]: 1,
  [GGUFValueType.UINT64]: 8,
  [GGUFValueType.INT64]: 8,
  [GGUFValueType.FLOAT64]: 8,
};

async function readValue(r: ByteReader, vtype: number, at: number, depth: number): Promise<GGUFValue> {
  switch (vtype) {
    case GGUFValueType.UINT8:
      return (await r.bytes(1))[0]!;
    case GGUFValueType.INT8:
      return ((await r.bytes(1))[0]! << 24) >> 24;
    case GGUFValueType.UINT16:
      return await r.u16();
    case GGUFValueType.INT16:
      return ((await r.u16()) << 16) >> 16;
    case GGUFValueType.UINT32:
      return await r.u32();
    case GGUFValueType.INT32:
      return (await r.u32()) | 0;
    case GGUFValueType.FLOAT32:
      return await r.f32();
    case GGUFValueType.BOOL:
      return (await r.bytes(1))[0]! !== 0;
    case GGUFValueType.STRING:
      return await readString(r, r.remaining);
    case GGUFValueType.UINT64: {
      const v = await r.u64();
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case GGUFValueType.INT64: {
      const v = BigInt.asIntN(64, await r.u64());
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
    case GGUFValueType.FLOAT64:
      return await r.f64();
    case GGUFValueType.ARRAY: {
      if (depth > 2) throw bad('arrays nested too deeply', at);
      const etype = await r.u32();
      const n = await r.count('array length', at);
      const esize = SCALAR_SIZE[etype as GGUFValueType];
      if (esize !== undefined) {
        if (n * esize > r.remaining) throw bad(`array of ${n} elements does not fit in the file`, at, { n });
        const b = await r.bytes(n * esize);
        return typedArray(etype, b, n);
      }
      if (etype === GGUFValueType.STRING) {
        if (n * 8 > r.remaining) throw bad(`string array of ${n} elements does not fit in the file`, at, { n });
        const out: string[] = new Array<string>(n);
        for (let i = 0; i < n; i++) out[i] = await readString(r, r.remaining);
        return out;
      }
      if (etype === GGUFValueType.ARRAY) {
        if (n * 12 > r.remaining) throw bad(`nested array of ${n} elements does not fit in the file`, at, { n });
        const out: GGUFValue[] = [];
        for (let i = 0; i < n; i++) out.push(await readValue(r, GGUFValueType.ARRAY, at, depth + 1));
        return out;
      }
      throw bad(`array element type ${etype} is unknown`, at);
    }
    default:
      throw bad(`metadata value type ${vtype} is unknown`, at, { vtype });
  }
}

function typedArray(etype: number, b: Uint8Array, n: number): GGUFValue {
  // Copy into an aligned buffer: the source bytes may sit at any offset. Uint8Array's slice, since a
  // Node Buffer's own slice() is a view.
  const buf = Uint8Array.prototype.slice.call(b).buffer;
  switch (etype as GGUFValueType) {
    case GGUFValueType.UINT8:
      return new Uint8Array(buf, 0, n);
    case GGUFValueType.INT8:
      return new Int8Array(buf, 0, n);
    case GGUFValueType.UINT16:
      return new Uint16Array(buf, 0, n);
    case GGUFValueType.INT16:
      return new Int16Array(buf, 0, n);
    case GGUFValueType.UINT32:
      return new Uint32Array(buf, 0, n);
    case GGUFValueType.INT32:
      return new Int32Array(buf, 0, n);
    case GGUFValueType.FLOAT32:
      return new Float32Array(buf, 0, n);
    case GGUFValueType.BOOL:
      return Array.from(new Uint8Array(buf, 0, n), (x) => x !== 0);
    case GGUFValueType.UINT64:
      return new BigUint64Array(buf, 0, n);
    case GGUFValueType.INT64:
      return new BigInt64Array(buf, 0, n);
    case GGUFValueType.FLOAT64:
      return new Float64Array(buf, 0, n);
    default:
      throw new Error('unreachable');
  }
}

/** Typed metadata access with clear errors. */
export class GGUFMeta {
  constructor(readonly map: Map<string, GGUFValue>) {}

  has(key: string): boolean {
    return this.map.has(key);
  }
  str(key: string): string;
  str(key: string, dflt: string): string;
  str(key: string, dflt?: string): string {
    const v = this.map.get(key);
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'string') throw new EngineError('BAD_MODEL_FILE', `GGUF metadata '${key}' is missing or not a string.`, { key });
    return v;
  }
  num(key: string, dflt?: number): number {
    const v = this.map.get(key);
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError('BAD_MODEL_FILE', `GGUF metadata '${key}' is missing or not a number.`, { key });
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.map.get(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw new EngineError('BAD_MODEL_FILE', `GGUF metadata '${key}' is not a bool.`, { key });
    return v;
  }
  strings(key: string): string[] | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      throw new EngineError('BAD_MODEL_FILE', `GGUF metadata '${key}' is not a string array.`, { key });
    return v as string[];
  }
  numbers(key: string): ArrayLike<number> | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (
      v instanceof Float32Array ||
      v instanceof Int32Array ||
      v instanceof Uint32Array ||
      v instanceof Float64Array ||
      v instanceof Int8Array ||
      v instanceof Uint8Array ||
      v instanceof Int16Array ||
      v instanceof Uint16Array
    )
      return v;
    throw new EngineError('BAD_MODEL_FILE', `GGUF metadata '${key}' is not a numeric array.`, { key });
  }
}

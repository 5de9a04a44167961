// Random-access byte sources (Blob/File in the browser, a file handle in Node, an ArrayBuffer
// anywhere) and a buffered little-endian reader over them. Add a source by implementing ByteSource.

import { EngineError } from '../api/errors.js';

export interface ByteSource {
  readonly size: number;
  /** Read exactly `length` bytes at `offset` (fewer only at end of file). */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export function bufferSource(buf: ArrayBuffer | Uint8Array): ByteSource {
  const u8 = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  return {
    size: u8.byteLength,
    read: (offset, length) => Promise.resolve(u8.subarray(offset, Math.min(u8.byteLength, offset + length))),
  };
}

export function blobSource(blob: Blob): ByteSource {
  return {
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
}

const CHUNK = 1 << 20;

/** Sequential reader with a 1 MiB window; every read past the end is a BAD_MODEL_FILE error. */
export class ByteReader {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private bufStart = 0;
  private view = new DataView(this.buf.buffer);

  constructor(private readonly src: ByteSource) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  private async ensure(n: number): Promise<number> {
    if (this.pos + n > this.src.size)
      throw new EngineError(
        'BAD_MODEL_FILE',
        `Malformed GGUF file: needs ${n} more bytes at offset ${this.pos} but the file ends at ${this.src.size} (truncated?).`,
        { offset: this.pos, fileSize: this.src.size },
      );
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.byteLength) return rel;
    const len = Math.min(Math.max(n, CHUNK), this.src.size - this.pos);
    const data = await this.src.read(this.pos, len);
    this.buf = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : Uint8Array.prototype.slice.call(data);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
    if (this.buf.byteLength < n) throw new EngineError('BAD_MODEL_FILE', `Malformed GGUF file: short read at offset ${this.pos}.`, { offset: this.pos });
    return 0;
  }

  async u16(): Promise<number> {
    const o = await this.ensure(2);
    this.pos += 2;
    return this.view.getUint16(o, true);
  }
  async u32(): Promise<number> {
    const o = await this.ensure(4);
    this.pos += 4;
    return this.view.getUint32(o, true);
  }
  async u64(): Promise<bigint> {
    const o = await this.ensure(8);
    this.pos += 8;
    return this.view.getBigUint64(o, true);
  }
  async f32(): Promise<number> {
    const o = await this.ensure(4);
    this.pos += 4;
    return this.view.getFloat32(o, true);
  }
  async f64(): Promise<number> {
    const o = await this.ensure(8);
    this.pos += 8;
    return this.view.getFloat64(o, true);
  }
  /** A u64 count that must fit in the rest of the file. */
  async count(what: string, at: number): Promise<number> {
    const v = await this.u64();
    if (v > BigInt(this.src.size))
      throw new EngineError('BAD_MODEL_FILE', `Malformed GGUF file: ${what} ${v} exceeds the file size ${this.src.size} (at byte offset ${at}).`, {
        offset: at,
        fileSize: this.src.size,
      });
    return Number(v);
  }
  async bytes(n: number): Promise<Uint8Array> {
    if (n > CHUNK) {
      if (this.pos + n > this.src.size) await this.ensure(n);
      const d = await this.src.read(this.pos, n);
      this.pos += n;
      return d;
    }
    const o = await this.ensure(n);
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }
}

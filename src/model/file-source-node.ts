// ByteSource over a Node file handle: the GGUF is read in place, never loaded whole into memory.
// Node-only; the browser uses blobSource().

import { open } from 'node:fs/promises';
import type { ByteSource } from './byte-source.js';

export async function fileSource(path: string): Promise<ByteSource> {
  const fh = await open(path, 'r');
  const { size } = await fh.stat();
  let closed: Promise<void> | null = null;
  return {
    size,
    async read(offset, length) {
      const n = Math.max(0, Math.min(length, size - offset));
      const buf = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === n ? buf : buf.subarray(0, got);
    },
    // Idempotent: an engine closes the source it loaded from, and so may its caller.
    close: () => (closed ??= fh.close()),
  };
}

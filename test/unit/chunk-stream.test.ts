// ChunkStream, the stream both engines return: order, the first end() wins, chunks after the end
// are dropped, an error reaches the reader after the chunks before it, `break` cancels, and a
// stream is iterated once.

import { describe, expect, it } from 'vitest';
import { ChunkStream } from '../../src/api/chunk-stream.js';
import { EngineError } from '../../src/api/errors.js';

async function drain<C>(s: AsyncIterable<C>): Promise<C[]> {
  const out: C[] = [];
  for await (const c of s) out.push(c);
  return out;
}

describe('ChunkStream', () => {
  it('hands chunks over in order, to a waiting reader as well as later, and the first end() counts', async () => {
    const s = new ChunkStream<number>(() => undefined);
    const got = drain(s);
    s.push(1);
    s.pushAll([2, 3]);
    await Promise.resolve();
    s.push(4);
    s.end();
    s.end(new Error('too late'));
    s.push(5);
    expect(await got).toEqual([1, 2, 3, 4]);
  });

  it('an error ends the stream after the chunks already pushed; a non-Error cause becomes GPU_ERROR', async () => {
    const s = new ChunkStream<string>(() => undefined);
    s.pushAll(['a', 'b']);
    s.end({ reason: 'x' });
    const seen: string[] = [];
    const err = await (async () => {
      for await (const c of s) seen.push(c);
    })().catch((e: unknown) => e);
    expect(seen).toEqual(['a', 'b']);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('GPU_ERROR');
  });

  it('break cancels once, drops what is queued, and a second iteration is refused', async () => {
    let cancels = 0;
    const s = new ChunkStream<number>(() => cancels++);
    s.pushAll([1, 2, 3]);
    for await (const c of s) if (c === 1) break;
    expect(cancels).toBe(1);
    expect(() => s[Symbol.asyncIterator]()).toThrow(/only once/);
    const t = new ChunkStream<number>(() => cancels++);
    t.end();
    for await (const c of t) void c;
    expect(cancels).toBe(1); // ended streams are not cancelled
  });
});

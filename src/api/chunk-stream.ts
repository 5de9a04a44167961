// A stream of completion chunks for `for await`: the producer pushes chunks and ends it (with an
// error or not); the consumer takes them in order. Breaking out of the loop cancels the request.
// The local engine and the worker client both return one.

import { EngineError } from './errors.js';

export class ChunkStream<C> implements AsyncIterable<C> {
  private items: C[] = [];
  private waiting: { resolve: (r: IteratorResult<C>) => void; reject: (e: Error) => void } | null = null;
  private done = false;
  private error: Error | null = null;
  private iterated = false;

  /** `onCancel` runs when the consumer stops iterating before the end (a `break`). */
  constructor(private readonly onCancel: () => void) {}

  push(chunk: C): void {
    this.pushAll([chunk]);
  }

  /** Chunks pushed after end() are dropped. */
  pushAll(chunks: readonly C[]): void {
    if (this.done) return;
    for (const c of chunks) {
      const w = this.waiting;
      if (w) {
        this.waiting = null;
        w.resolve({ value: c, done: false });
      } else this.items.push(c);
    }
  }

  /** End the stream; a cause makes the consumer's next read reject with it. The first end() counts. */
  end(cause: unknown = null): void {
    if (this.done) return;
    this.done = true;
    this.error = cause === null || cause instanceof Error ? cause : new EngineError('GPU_ERROR', `Generation failed: ${JSON.stringify(cause)}`);
    const w = this.waiting;
    this.waiting = null;
    if (!w) return;
    if (this.error !== null) w.reject(this.error);
    else w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<C> {
    if (this.iterated) throw new EngineError('BAD_REQUEST', 'A completion stream can be iterated only once.');
    this.iterated = true;
    return {
      next: (): Promise<IteratorResult<C>> => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.done) return this.error !== null ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
      },
      // `break` out of `for await`: stop the request (it ends as an abort).
      return: (): Promise<IteratorResult<C>> => {
        if (!this.done) this.onCancel();
        this.done = true;
        this.items = [];
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

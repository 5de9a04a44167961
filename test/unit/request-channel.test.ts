// The page's end of the worker's request port (src/worker/wire.ts RequestChannel), against a scripted
// worker end on a real MessageChannel: streamed items arrive before the result, errors keep their
// EngineError code, aborts reach the worker by id, and a request that cannot be cloned fails at once.

import { afterEach, describe, expect, it } from 'vitest';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { EngineError } from '../../src/api/errors.js';
import { RequestChannel, toWireError, type FromWorker, type ToWorker } from '../../src/worker/wire.js';

const open: { close(): void }[] = [];
afterEach(() => {
  for (const p of open.splice(0)) p.close();
});

/** A channel whose worker end answers each call with `answer`, and records every message it gets. */
function channel(answer: (m: Extract<ToWorker, { t: 'call' }>, post: (r: FromWorker) => void) => void): { requests: RequestChannel; seen: ToWorker[] } {
  const { port1, port2 } = new MessageChannel();
  const seen: ToWorker[] = [];
  const worker = port2 as unknown as MessagePort;
  worker.on('message', (m: ToWorker) => {
    seen.push(m);
    if (m.t === 'call') answer(m, (r) => worker.postMessage(r));
  });
  const requests = new RequestChannel(port1 as unknown as globalThis.MessagePort);
  open.push(requests, worker);
  return { requests, seen };
}

describe('RequestChannel', () => {
  it('delivers streamed items in order before the result, each request by its own id', async () => {
    const { requests, seen } = channel((m, post) => {
      const n = (m.params as { n: number }).n;
      for (let i = 0; i < n; i++) post({ t: 'items', id: m.id, items: [`${m.id}:${i}`] });
      post({ t: 'done', id: m.id, value: { n } });
    });
    const got: Record<string, string[]> = { a: [], b: [] };
    const [a, b] = await Promise.all([
      requests.call<{ n: number }, string>('completion', { n: 3 }, { onItems: (xs) => got.a!.push(...xs) }),
      requests.call<{ n: number }, string>('chat', { n: 2 }, { onItems: (xs) => got.b!.push(...xs) }),
    ]);
    expect(a).toEqual({ n: 3 });
    expect(b).toEqual({ n: 2 });
    expect(got.a).toEqual(['1:0', '1:1', '1:2']);
    expect(got.b).toEqual(['2:0', '2:1']);
    expect(seen.map((m) => m.t === 'call' && [m.op, m.stream, m.aborted])).toEqual([
      ['completion', true, false],
      ['chat', true, false],
    ]);
  });

  it('rejects with the EngineError the worker sent, code and details kept', async () => {
    const { requests } = channel((m, post) => {
      post({ t: 'error', id: m.id, error: toWireError(new EngineError('CONTEXT_OVERFLOW', 'too long', { promptTokens: 9000, maxContext: 2048 })) });
    });
    const e = await requests.call('completion', {}).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('CONTEXT_OVERFLOW');
    expect((e as EngineError).details).toEqual({ promptTokens: 9000, maxContext: 2048 });
  });

  it('sends an abort for the request when its signal fires, and says so in the call when it had already fired', async () => {
    let finish: (() => void) | null = null;
    const { requests, seen } = channel((m, post) => {
      finish = () => post({ t: 'done', id: m.id, value: 'aborted there' });
    });
    const ac = new AbortController();
    const p = requests.call('generate', {}, { signal: ac.signal });
    await until(() => finish !== null);
    ac.abort();
    await until(() => seen.length === 2);
    expect(seen[1]).toEqual({ t: 'abort', id: 1 });
    finish!();
    expect(await p).toBe('aborted there');

    const early = new AbortController();
    early.abort();
    finish = null;
    const q = requests.call('generate', {}, { signal: early.signal });
    await until(() => finish !== null);
    expect(seen[2]).toMatchObject({ t: 'call', id: 2, aborted: true });
    finish!();
    await q;
  });

  it('fails a request the structured clone cannot copy with BAD_REQUEST, and sends nothing', async () => {
    const { requests, seen } = channel(() => undefined);
    const e = await requests.call('completion', { prompt: 'x', onToken: () => 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('BAD_REQUEST');
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([]);
  });
});

describe('RequestChannel.close', () => {
  it('rejects every pending request with ABORTED, or with the reason given, and ignores late answers', async () => {
    const calls: ((r: FromWorker) => void)[] = [];
    const { requests } = channel((m, post) => calls.push((r) => post({ ...r, id: m.id })));
    const items: string[] = [];
    const a = requests.call('chat', {}, { onItems: (xs: string[]) => items.push(...xs) }).catch((x: unknown) => x);
    const b = requests.call('generate', {}).catch((x: unknown) => x);
    await until(() => calls.length === 2);
    calls[0]!({ t: 'items', id: 0, items: ['first'] });
    await until(() => items.length === 1);
    requests.close();
    const [ea, eb] = await Promise.all([a, b]);
    for (const e of [ea, eb]) {
      expect(e).toBeInstanceOf(EngineError);
      expect((e as EngineError).code).toBe('ABORTED');
    }
    expect(items).toEqual(['first']);

    const other = channel(() => undefined).requests;
    const c = other.call('completion', {}).catch((x: unknown) => x);
    other.close(new EngineError('GPU_ERROR', 'worker failed'));
    expect(((await c) as EngineError).code).toBe('GPU_ERROR');
  });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error('condition not reached');
}

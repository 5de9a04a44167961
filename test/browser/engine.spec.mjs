// The OpenAI-shaped engine in a module Web Worker (src/worker/engine-client.ts createEngine()): streaming in
// batches, abort, concurrent requests, typed errors, and the worker's overhead against a main-thread LocalEngine.

import { join } from 'node:path';

const MODEL = 'llama-f32';

function modules(t) {
  const fs = (rel) => `/@fs${join(t.repo, rel)}`;
  return {
    page: fs('test/browser/engine-page.ts'),
    localEngine: fs('src/engine/local-engine.ts'),
    device: fs('src/gpu/device.ts'),
    byteSource: fs('src/model/byte-source.ts'),
  };
}

export async function aStreamedChatArrivesInBatchesAndEqualsTheNonStreamedGreedyContent(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { loadedEngine } = await import(a.m.page);
      const engine = await loadedEngine(a.url);
      const req = { messages: [{ role: 'user', content: a.prompt }], max_tokens: 48, temperature: 0 };
      const whole = await engine.chat.completions.create(req);
      const t0 = performance.now();
      const stream = await engine.chat.completions.create({ ...req, stream: true });
      const chunks = [];
      for await (const c of stream) chunks.push({ ms: performance.now() - t0, c });
      engine.terminate();
      return { whole, chunks };
    },
    { m: modules(t), url: t.fixtures[MODEL].url, prompt: t.prompt },
  );
  const { whole, chunks } = r;
  const content = chunks.map((x) => x.c.choices[0].delta.content ?? '').join('');
  t.assert.equal(whole.object, 'chat.completion');
  t.assert.ok(whole.usage.completion_tokens > 0, 'the non-streamed request generated tokens');
  t.assert.equal(content, whole.choices[0].message.content, 'the streamed content equals the non-streamed greedy content');
  const last = chunks.at(-1).c;
  t.assert.equal(last.choices[0].finish_reason, whole.choices[0].finish_reason);
  t.assert.equal(last.usage.completion_tokens, whole.usage.completion_tokens);
  t.assert.equal(chunks[0].c.choices[0].delta.role, 'assistant');
  t.assert.ok(
    chunks.every((x) => x.c.object === 'chat.completion.chunk' && x.c.id === chunks[0].c.id),
    'every chunk is a chat.completion.chunk of one id',
  );
  // Chunks of one batch are handed out together; a new batch arrives after a gap.
  const batches = [];
  for (const x of chunks) {
    const b = batches.at(-1);
    if (b && x.ms - b.endMs < 1) {
      b.n++;
      b.endMs = x.ms;
    } else batches.push({ startMs: x.ms, endMs: x.ms, n: 1 });
  }
  t.assert.ok(batches.length >= 3, `more than one batch before the end (${batches.length} batches: ${batches.map((b) => b.n).join(', ')} chunks)`);
  t.assert.ok(batches.length < chunks.length || chunks.length <= 3, 'not every chunk on its own');
  t.log(
    `${chunks.length} chunks (${whole.usage.completion_tokens} tokens, ${whole.choices[0].finish_reason}) in ${batches.length} batches of ${batches.map((b) => b.n).join(', ')} at ${batches.map((b) => b.startMs.toFixed(0)).join(', ')} ms`,
  );
}

export async function abortMidStreamEndsWithFinishReasonAbortAndTheNextRequestWorks(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { loadedEngine, EngineError } = await import(a.m.page);
      const engine = await loadedEngine(a.url);
      const req = { messages: [{ role: 'user', content: a.prompt }], max_tokens: 24, temperature: 0 };
      const solo = await engine.chat.completions.create(req);

      // Abort once the first content arrives: the stream ends with a last chunk 'abort'.
      const ac = new AbortController();
      const stream = await engine.chat.completions.create({
        messages: [{ role: 'user', content: 'Tell me a long story.' }],
        max_tokens: 400,
        temperature: 0,
        stream: true,
        signal: ac.signal,
      });
      const chunks = [];
      for await (const c of stream) {
        chunks.push(c);
        if ((c.choices[0].delta.content ?? '') !== '') ac.abort();
      }
      // A non-streamed request with an aborted signal rejects with ABORTED.
      let nonStreamed = null;
      try {
        await engine.chat.completions.create({ ...req, signal: ac.signal });
      } catch (e) {
        nonStreamed = { isEngineError: e instanceof EngineError, code: e.code };
      }
      // Breaking out of a stream stops it too.
      let broke = 0;
      for await (const c of await engine.completions.create({ prompt: a.prompt, max_tokens: 400, temperature: 0, stream: true })) {
        if (c.choices[0].text !== '') broke++;
        if (broke >= 2) break;
      }
      const next = await engine.chat.completions.create(req);
      engine.terminate();
      return { solo, chunks, nonStreamed, next };
    },
    { m: modules(t), url: t.fixtures[MODEL].url, prompt: t.prompt },
  );
  const last = r.chunks.at(-1);
  t.assert.equal(last.choices[0].finish_reason, 'abort', 'the last chunk says abort');
  t.assert.ok(last.usage.completion_tokens < 400, `stopped early (${last.usage.completion_tokens} tokens)`);
  t.assert.ok(
    r.chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null),
    'only the last chunk has a finish reason',
  );
  t.assert.deepEqual(r.nonStreamed, { isEngineError: true, code: 'ABORTED' });
  t.assert.equal(r.next.choices[0].message.content, r.solo.choices[0].message.content, 'the next request works and equals the first');
  t.log(`aborted after ${last.usage.completion_tokens} tokens`);
}

export async function twoConcurrentCreateCallsAreServedTogetherAndEqualTheirSoloResults(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { loadedEngine } = await import(a.m.page);
      const engine = await loadedEngine(a.url);
      const chatReq = { messages: [{ role: 'user', content: a.prompt }], max_tokens: 20, temperature: 0 };
      const textReq = { prompt: 'The quick brown fox', max_tokens: 20, temperature: 0 };
      const collectChat = async (p) => {
        let s = '';
        let finish = null;
        for await (const c of await p) {
          s += c.choices[0].delta.content ?? '';
          finish = c.choices[0].finish_reason ?? finish;
        }
        return { text: s, finish };
      };
      const soloChat = await collectChat(engine.chat.completions.create({ ...chatReq, stream: true }));
      const soloText = await engine.completions.create(textReq);
      const [bothChat, bothText] = await Promise.all([
        collectChat(engine.chat.completions.create({ ...chatReq, stream: true })),
        engine.completions.create(textReq),
      ]);
      // And the other way round: two streams started together.
      const [c1, c2] = await Promise.all([
        collectChat(engine.chat.completions.create({ ...chatReq, stream: true })),
        collectChat(engine.chat.completions.create({ ...chatReq, stream: true })),
      ]);
      const serving = (await engine.info()).model.serving;
      engine.terminate();
      return { soloChat, soloText, bothChat, bothText, c1, c2, serving };
    },
    { m: modules(t), url: t.fixtures[MODEL].url, prompt: t.prompt },
  );
  t.assert.ok(r.soloChat.text.length > 0 && r.soloText.choices[0].text.length > 0);
  t.assert.deepEqual(r.bothChat, r.soloChat, 'the streamed chat equals its solo result');
  t.assert.equal(r.bothText.choices[0].text, r.soloText.choices[0].text, 'the completion equals its solo result');
  t.assert.deepEqual(r.c1, r.soloChat);
  t.assert.deepEqual(r.c2, r.soloChat);
  // Served together, not queued: the worker's scheduler ran both in the same steps.
  t.assert.ok(r.serving.maxSeqsInStep >= 2, `most sequences in one step: ${r.serving.maxSeqsInStep}`);
}

export async function aMalformedModelGivesEngineErrorBadModelFileOnTheMainThread(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { createEngine, EngineError } = await import(a.m.page);
      const engine = await createEngine();
      const catchErr = async (p) => {
        try {
          await p;
          return null;
        } catch (e) {
          return { isEngineError: e instanceof EngineError, name: e.name, code: e.code, message: e.message, details: e.details };
        }
      };
      const notLoaded = await catchErr(engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, stream: true }));
      const bad = await catchErr(engine.load(a.badUrl));
      const bytes = await (await fetch(a.badUrl)).arrayBuffer();
      const badBuffer = await catchErr(engine.load(bytes));
      const detached = bytes.byteLength === 0;
      // Still usable afterwards.
      await engine.load(a.goodUrl);
      const ok = await engine.completions.create({ prompt: a.prompt, max_tokens: 4, temperature: 0 });
      engine.terminate();
      return { notLoaded, bad, badBuffer, detached, ok };
    },
    { m: modules(t), badUrl: t.badModelUrl, goodUrl: t.fixtures[MODEL].url, prompt: t.prompt },
  );
  t.assert.equal(r.notLoaded?.code, 'NOT_LOADED', 'a streamed create() before load() rejects');
  t.assert.equal(r.notLoaded.isEngineError, true);
  for (const e of [r.bad, r.badBuffer]) {
    t.assert.ok(e, 'loading the truncated file must fail');
    t.assert.equal(e.isEngineError, true, `instanceof EngineError on the main thread (got ${e.name})`);
    t.assert.equal(e.code, 'BAD_MODEL_FILE', e.message);
    t.assert.equal(typeof e.details.offset, 'number', 'details survive the boundary');
  }
  t.assert.equal(r.detached, true, 'the ArrayBuffer was transferred, not copied');
  t.assert.ok(r.ok.usage.completion_tokens > 0);
}

export async function terminateRejectsWhatIsPendingAndAWorkerThatCannotStartFailsCreateEngine(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { createEngine, loadedEngine, EngineError } = await import(a.m.page);
      const describe = (e) => ({ isEngineError: e instanceof EngineError, code: e.code, message: e.message });
      // A worker whose script throws while starting never answers; createEngine() must not wait forever.
      const broken = new Worker(URL.createObjectURL(new Blob(['throw new Error("boom at start");'], { type: 'text/javascript' })), { type: 'module' });
      const startFailure = await createEngine({ worker: broken }).then(() => null, describe);

      const engine = await loadedEngine(a.url);
      const stream = await engine.completions.create({ prompt: a.prompt, max_tokens: 400, temperature: 0, stream: true });
      const whole = engine.completions.create({ prompt: a.prompt, max_tokens: 400, temperature: 0 }).then(() => null, describe);
      let texts = 0;
      let streamError = null;
      try {
        for await (const c of stream) if (c.choices[0].text !== '' && ++texts === 2) engine.terminate();
      } catch (e) {
        streamError = describe(e);
      }
      // A model-wide call pending at terminate() rejects too, instead of never settling.
      const second = await loadedEngine(a.url);
      const pendingLoad = second.load(a.url).then(() => null, describe);
      second.terminate();
      return { startFailure, streamError, texts, whole: await whole, pendingLoad: await pendingLoad };
    },
    { m: modules(t), url: t.fixtures[MODEL].url, prompt: t.prompt },
  );
  t.assert.ok(r.startFailure, 'createEngine() rejects');
  t.assert.equal(r.startFailure.isEngineError, true);
  t.assert.equal(r.startFailure.code, 'GPU_ERROR', r.startFailure.message);
  t.assert.match(r.startFailure.message, /failed to start/);
  t.assert.equal(r.texts, 2, 'the stream stopped at the terminate');
  for (const e of [r.streamError, r.whole, r.pendingLoad]) {
    t.assert.ok(e, 'a request or load running at terminate() rejects');
    t.assert.equal(e.isEngineError, true);
    t.assert.equal(e.code, 'ABORTED', e.message);
  }
}

export async function anAbortedLoadRejectsWithAbortedAndTheNextLoadWorks(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { loadedEngine, EngineError } = await import(a.m.page);
      const engine = await loadedEngine(a.url);
      // Aborted while the worker fetches the file: the abort message arrives before the download can finish.
      const ac = new AbortController();
      const loading = engine.load(a.url, { signal: ac.signal });
      ac.abort();
      const aborted = await loading.then(
        () => null,
        (e) => ({ isEngineError: e instanceof EngineError, code: e.code, message: e.message, loadedBytes: e.details?.loadedBytes }),
      );
      const after = await engine.info();
      // A signal that has already fired never reaches the worker.
      const early = await engine.load(a.url, { signal: ac.signal }).then(
        () => null,
        (e) => e.code,
      );
      await engine.load(a.url);
      const ok = await engine.completions.create({ prompt: a.prompt, max_tokens: 4, temperature: 0 });
      engine.terminate();
      return { aborted, modelAfterAbort: after.model, early, tokens: ok.usage.completion_tokens };
    },
    { m: modules(t), url: t.fixtures[MODEL].url, prompt: t.prompt },
  );
  t.assert.ok(r.aborted, 'the aborted load rejects');
  t.assert.equal(r.aborted.isEngineError, true);
  t.assert.equal(r.aborted.code, 'ABORTED', r.aborted.message);
  t.log(r.aborted.message);
  t.assert.equal(r.modelAfterAbort, null, 'load() freed the previous model first, and the aborted one never finished');
  t.assert.equal(r.early, 'ABORTED');
  t.assert.equal(r.tokens, 4);
}

/**
 * Worker overhead: the page side of `npm run bench:worker` (bench/worker-overhead-page.ts) on the
 * smallest fixture, a few prompts, so the benchmark keeps working; both engines must generate the
 * same greedy text. Prints the paired numbers; asserts no timings (the benchmark measures them).
 */
export async function workerOverheadAgainstAMainThreadLocalEngine(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { measureWorkerOverhead } = await import(a.pageModule);
      return measureWorkerOverhead({ url: a.url, prompts: a.prompts, maxTokens: 16 });
    },
    {
      pageModule: `/@fs${join(t.repo, 'bench/worker-overhead-page.ts')}`,
      url: t.fixtures[MODEL].url,
      prompts: ['Once upon a time', 'The little dog ran', 'In the morning the sun', 'She opened the door and', 'A long way from home', 'The old man said'],
    },
  );
  t.assert.equal(r.pairs.length, 6);
  for (const p of r.pairs) {
    t.assert.ok(p.worker.tokens > 1 && p.worker.tokens === p.mainThread.tokens, `${p.prompt}: ${p.worker.tokens} vs ${p.mainThread.tokens} tokens`);
    t.assert.equal(p.worker.text, p.mainThread.text, `${p.prompt}: both engines generate the same greedy text`);
  }
  const s = r.summary;
  t.assert.ok(s.ttftDiffMs.lo <= s.ttftDiffMs.value && s.ttftDiffMs.value <= s.ttftDiffMs.hi);
  console.log(`    worker overhead ${JSON.stringify({ model: MODEL, ...s })}`);
}

// The engine in a module Web Worker: fixture models generate Node's greedy tokens, and errors
// cross the boundary as EngineErrors. Each export is a test taking the runner's context `t`.

/** Loads `url` in a fresh worker, generates greedily, and returns what the page saw. */
async function generateInWorker(t, model) {
  const page = await t.page();
  const fx = t.fixtures[model];
  const r = await page.evaluate(
    async (a) => {
      const { createWorkerEngine } = await import(a.clientModule);
      const engine = createWorkerEngine();
      const info = await engine.load(a.url);
      const batches = [];
      const res = await engine.generate({ prompt: a.prompt, maxTokens: a.maxTokens, temperature: 0 }, { onTokens: (b) => batches.push(b) });
      const after = await engine.info();
      engine.terminate();
      return { info, res, batches, after };
    },
    { clientModule: t.clientModule, url: fx.url, prompt: t.prompt, maxTokens: t.maxTokens },
  );
  t.assert.ok(
    page.workers().some((w) => w.url().includes('worker')),
    `the page should have started a module worker (workers: ${page.workers().map((w) => w.url())})`,
  );
  return { r, expected: fx.expected };
}

function checkGeneration(t, { r, expected }, arch) {
  t.assert.equal(r.info.model.arch, arch);
  t.assert.ok(r.info.adapter.length > 0, 'adapter description');
  t.assert.equal(typeof r.info.isFallback, 'boolean');
  t.assert.ok(r.info.model.gpuBytes > 0, 'gpu bytes');
  t.assert.deepEqual(r.res.promptTokens, expected.promptTokens, 'prompt tokenization equals Node');
  t.assert.deepEqual(r.res.tokens, expected.tokens, 'greedy tokens equal hearth in Node');
  t.assert.equal(r.res.text, expected.text);
  // Streaming: the batches, in order, are exactly the result.
  t.assert.deepEqual(
    r.batches.flatMap((b) => b.tokens),
    r.res.tokens,
  );
  t.assert.equal(r.batches.map((b) => b.text).join(''), r.res.text);
  t.assert.ok(r.batches.length >= 1 && r.batches.length <= r.res.tokens.length);
  t.assert.equal(r.batches[0].tokens.length, 1, 'the first token is sent on its own, not held for a batch');
  t.assert.equal(r.after.model.name, r.info.model.name);
  t.log(
    `${arch}: ${r.res.tokens.length} tokens in ${r.batches.length} batches, decode ${r.res.timings.decodeTokensPerS.toFixed(1)} tok/s on ${r.info.adapter}`,
  );
}

export async function llamaF32InAWorkerGeneratesTheGreedyTokensOfNode(t) {
  checkGeneration(t, await generateInWorker(t, 'llama-f32'), 'llama');
}

export async function qwen2F32InAWorkerGeneratesTheGreedyTokensOfNode(t) {
  checkGeneration(t, await generateInWorker(t, 'qwen2-f32'), 'qwen2');
}

export async function malformedModelGivesBadModelFileAndTheWorkerStaysUsable(t) {
  const page = await t.page();
  const fx = t.fixtures['llama-f32'];
  const r = await page.evaluate(
    async (a) => {
      const { createWorkerEngine } = await import(a.clientModule);
      const { EngineError } = await import(a.errorsModule);
      const engine = createWorkerEngine();
      const catchErr = async (p) => {
        try {
          await p;
          return null;
        } catch (e) {
          return { isEngineError: e instanceof EngineError, name: e.name, code: e.code, message: e.message, details: e.details, stack: String(e.stack) };
        }
      };
      const fromUrl = await catchErr(engine.load(a.badUrl));
      // The same bytes as a transferred ArrayBuffer.
      const bytes = await (await fetch(a.badUrl)).arrayBuffer();
      const fromBuffer = await catchErr(engine.load(bytes));
      const detached = bytes.byteLength === 0;
      const missing = await catchErr(engine.load('/models/no-such-model.gguf'));
      const notLoaded = await catchErr(engine.generate({ prompt: a.prompt, maxTokens: 2 }));
      // Still usable: a good model (as a Blob this time) loads and generates.
      const blob = await (await fetch(a.goodUrl)).blob();
      const info = await engine.load(blob);
      const res = await engine.generate({ prompt: a.prompt, maxTokens: 4, temperature: 0 });
      engine.terminate();
      return { fromUrl, fromBuffer, detached, missing, notLoaded, info, res };
    },
    { clientModule: t.clientModule, errorsModule: t.errorsModule, badUrl: t.badModelUrl, goodUrl: fx.url, prompt: t.prompt },
  );
  for (const e of [r.fromUrl, r.fromBuffer]) {
    t.assert.ok(e, 'loading the truncated file must fail');
    t.assert.equal(e.isEngineError, true, `instanceof EngineError on the main thread (got ${e.name})`);
    t.assert.equal(e.name, 'EngineError');
    t.assert.equal(e.code, 'BAD_MODEL_FILE', e.message);
    t.assert.match(e.message, /past the end|truncated|does not fit/);
    t.assert.equal(typeof e.details.offset, 'number', 'details survive the boundary');
    t.assert.match(e.stack, /worker|model|gguf/i, 'the worker-side stack is kept');
  }
  t.assert.equal(r.detached, true, 'the ArrayBuffer was transferred, not copied');
  t.assert.equal(r.missing?.code, 'BAD_REQUEST');
  t.assert.match(r.missing.message, /HTTP 404/);
  t.assert.equal(r.notLoaded?.code, 'NOT_LOADED');
  t.assert.equal(r.info.model.arch, 'llama');
  t.assert.deepEqual(r.res.tokens, fx.expected.tokens.slice(0, 4));
  t.log(`BAD_MODEL_FILE: ${r.fromUrl.message}`);
}

export async function abortStopsAGenerationEarly(t) {
  const page = await t.page();
  const r = await page.evaluate(
    async (a) => {
      const { createWorkerEngine } = await import(a.clientModule);
      const engine = createWorkerEngine();
      await engine.load(a.url);
      const ac = new AbortController();
      let streamed = 0;
      const res = await engine.generate(
        { prompt: a.prompt, maxTokens: 200, temperature: 0 },
        {
          signal: ac.signal,
          onTokens: (b) => {
            streamed += b.tokens.length;
            ac.abort();
          },
        },
      );
      // An already-aborted signal stops before the first token.
      const pre = await engine.generate({ prompt: a.prompt, maxTokens: 8, temperature: 0 }, { signal: ac.signal });
      engine.terminate();
      return { finishReason: res.finishReason, n: res.tokens.length, streamed, preReason: pre.finishReason, preN: pre.tokens.length };
    },
    { clientModule: t.clientModule, url: t.fixtures['llama-f32'].url, prompt: t.prompt },
  );
  t.assert.equal(r.finishReason, 'abort');
  t.assert.ok(r.n >= 1 && r.n < 200, `stopped early (${r.n} tokens)`);
  t.assert.equal(r.streamed, r.n, 'every generated token was streamed');
  t.assert.equal(r.preReason, 'abort');
  t.assert.equal(r.preN, 0);
}

export async function aDraftModelLoadedByUrlSpeculatesInTheWorkerWithTheGreedyTokensOfNode(t) {
  const page = await t.page();
  const fx = t.fixtures['llama-f32'];
  const r = await page.evaluate(
    async (a) => {
      const { createWorkerEngine } = await import(a.clientModule);
      const engine = createWorkerEngine();
      // The model drafts for itself here (same vocabulary by construction): every greedy draft is accepted.
      await engine.load(a.url, { draft: a.url, speculative: { draft: 'model', tree: { width: 2, depth: 2 } } });
      const res = await engine.generate({ prompt: a.prompt, maxTokens: a.maxTokens, temperature: 0 });
      const info = await engine.info();
      engine.terminate();
      return { res, serving: info.model.serving };
    },
    { clientModule: t.clientModule, url: fx.url, prompt: t.prompt, maxTokens: t.maxTokens },
  );
  t.assert.deepEqual(r.res.tokens, fx.expected.tokens, 'greedy tokens equal hearth in Node');
  t.assert.ok(r.serving.verifySteps > 0, `verify steps ${JSON.stringify(r.serving)}`);
  t.assert.ok(r.serving.acceptedDraftTokens > 0, 'drafts accepted');
  t.log(`draft model in the worker: ${r.serving.acceptedDraftTokens} of ${r.serving.draftedTokens} drafts accepted in ${r.serving.verifySteps} verify steps`);
}

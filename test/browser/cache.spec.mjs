// The semantic cache on real IndexedDB (src/cache/store-idb.ts through idb-keyval): entries inserted in a page
// are found by lookup after the page reloads and the cache is reopened.

import { join } from 'node:path';

function modules(t) {
  const fs = (rel) => `/@fs${join(t.repo, rel)}`;
  return { cache: fs('src/cache/semantic-cache.ts'), lexical: fs('src/cache/lexical.ts'), idb: fs('src/cache/store-idb.ts') };
}

export async function entriesInsertedInIndexedDbAreFoundAfterAPageReload(t) {
  const page = await t.page();
  const m = modules(t);
  const dbName = `hearth-cache-spec-${Date.now()}`;
  const open = async (a) => {
    const { SemanticCache, hashContext, samplingKey } = await import(a.m.cache);
    const { LexicalEmbedder } = await import(a.m.lexical);
    const { IdbStore } = await import(a.m.idb);
    const errors = [];
    const store = IdbStore.open({ dbName: a.dbName, onError: (e) => errors.push(e.message) });
    const cache = await SemanticCache.create({ embedder: new LexicalEmbedder(), store });
    const key = (system) => ({ model: 'tiny', context: hashContext([system]), sampling: samplingKey({ temperature: 0 }) });
    return { cache, key, errors };
  };
  const before = await page.evaluate(
    async ([a, openSrc]) => {
      const { cache, key, errors } = await (0, eval)(`(${openSrc})`)(a);
      await cache.insert(key('You are a support agent.'), 'How do I reset my password?', { text: 'Settings › Security.', completionTokens: 4 });
      await cache.insert(key('You are a support agent.'), 'Where is my order?', { text: 'On its way.', completionTokens: 3 });
      await cache.insert(key('You are a pirate.'), 'Where is my order?', { text: 'Arr.', completionTokens: 1 });
      return { size: cache.size, errors };
    },
    [{ m, dbName }, open.toString()],
  );
  t.assert.equal(before.size, 3);
  t.assert.deepEqual(before.errors, []);

  await page.reload();
  const after = await page.evaluate(
    async ([a, openSrc]) => {
      const { cache, key, errors } = await (0, eval)(`(${openSrc})`)(a);
      const agent = key('You are a support agent.');
      const r = {
        loadStats: cache.loadStats,
        password: await cache.lookup(agent, 'hi, how do i reset my pasword please'),
        order: await cache.lookup(agent, 'where is my order'),
        pirate: await cache.lookup(key('You are a pirate.'), 'Where is my order?!'),
        otherContext: await cache.lookup(key('You are a poet.'), 'Where is my order?'),
        nearMiss: await cache.lookup(agent, 'How do I reset my router?'),
        errors,
      };
      await cache.flush();
      indexedDB.deleteDatabase(a.dbName);
      return r;
    },
    [{ m, dbName }, open.toString()],
  );
  t.assert.deepEqual(after.loadStats, { loaded: 3, corrupted: 0, expired: 0, otherEmbedder: 0, evicted: 0 });
  t.assert.equal(after.password?.entry.response.text, 'Settings › Security.');
  t.assert.ok(after.password.similarity >= 0.8 && after.password.similarity < 1, `similarity ${after.password.similarity}`);
  t.assert.equal(after.order?.entry.response.text, 'On its way.');
  t.assert.equal(after.pirate?.entry.response.text, 'Arr.');
  t.assert.equal(after.otherContext, null);
  t.assert.equal(after.nearMiss, null);
  t.assert.deepEqual(after.errors, []);
  t.log(`after reload: ${after.loadStats.loaded} entries from IndexedDB, typo'd repeat at similarity ${after.password.similarity.toFixed(3)}`);
}

/** The engine in its worker with `semanticCache`: an answer given before a reload is served from IndexedDB after it. */
export async function theWorkerEngineAnswersARepeatedQuestionFromIndexedDbAfterAReload(t) {
  const page = await t.page();
  const dbName = `hearth-engine-cache-spec-${Date.now()}`;
  const ask = async (a) => {
    const { createEngine } = await import(a.client);
    const engine = await createEngine();
    await engine.load(a.url, { semanticCache: { dbName: a.dbName } });
    const messages = (q) => [
      { role: 'system', content: 'You are the help desk of a bicycle shop.' },
      { role: 'user', content: q },
    ];
    const out = [];
    for (const q of a.questions) {
      const r = await engine.chat.completions.create({ messages: messages(q), max_tokens: 10, temperature: 0, cache: { semantic: true } });
      out.push({ text: r.choices[0].message.content, cache: r.hearth?.cache ?? null });
    }
    engine.terminate();
    return out;
  };
  const a = { client: `/@fs${join(t.repo, 'src/worker/engine-client.ts')}`, url: t.fixtures['llama-f32'].url, dbName };
  const first = await page.evaluate(ask, { ...a, questions: ['How do I reset my password?'] });
  t.assert.deepEqual(first[0].cache, { hit: false });
  await page.reload();
  const second = await page.evaluate(ask, { ...a, questions: ['hi, how do i reset my password', 'How do I reset my router?'] });
  t.assert.equal(second[0].cache.hit, true, JSON.stringify(second[0]));
  t.assert.equal(second[0].text, first[0].text);
  t.assert.deepEqual(second[1].cache, { hit: false });
  await page.evaluate((n) => indexedDB.deleteDatabase(n), dbName);
}

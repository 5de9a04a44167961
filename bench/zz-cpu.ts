import { register } from 'node:module';
register('../bin/wgsl-hooks.mjs', import.meta.url);
const { acquireNodeDevice } = await import('../src/gpu/device-node.js');
const { LocalEngine } = await import('../src/engine/local-engine.js');
const { fileSource } = await import('../src/model/file-source-node.js');
const ctx = await acquireNodeDevice();
const engine = await LocalEngine.load(ctx, await fileSource(process.argv[2]!), { maxContext: 512 });
const words = 'once upon a time the little dog ran in the morning sun she opened the door and a long way from home'.split(' ');
const run = async (n: number) => {
  const t0 = performance.now();
  let tokens = 0;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const s = await engine.chat.completions.create({ messages: [{ role: 'user', content: words.slice(i % 5, 12 + (i % 5)).join(' ') }], max_tokens: 32, temperature: 0, stream: true });
    for await (const c of s) if (c.usage) tokens += c.usage.completion_tokens;
  }));
  return { n, tokens, s: (performance.now() - t0) / 1000 };
};
await run(2);
console.log(JSON.stringify(await run(8)));
console.log(JSON.stringify(engine.loaded.scheduler.stats()));

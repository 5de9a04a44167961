// Runs llama.cpp embedding jobs in their own process and prints the vectors as JSON: node-llama-cpp and Dawn
// abort when loaded into one process, so test/oracle/bert.test.ts calls this through llamaEmbeddings().
// Usage: node --import tsx test/oracle/llama-embed-cli.ts < jobs.json

import { getLlama } from 'node-llama-cpp';

interface Job {
  modelPath: string;
  texts: string[];
}

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Job[];
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
const out: { vectors: number[][]; tokens: number[][] }[] = [];
for (const j of jobs) {
  const model = await llama.loadModel({ modelPath: j.modelPath, gpuLayers: 0 });
  // The whole trained context in one batch: an encoder sees all its tokens at once.
  const n = model.trainContextSize;
  const ctx = await model.createEmbeddingContext({ contextSize: n, batchSize: n, threads: 1 });
  const vectors: number[][] = [];
  const tokens: number[][] = [];
  for (const t of j.texts) {
    vectors.push([...(await ctx.getEmbeddingFor(t)).vector]);
    tokens.push(Array.from(model.tokenize(t, false), Number));
  }
  await ctx.dispose();
  await model.dispose();
  out.push({ vectors, tokens });
}
process.stdout.write(JSON.stringify(out), () => process.exit(0));

// Runs llama.cpp jobs in their own process and prints the results as JSON: node-llama-cpp and
// Dawn abort when loaded into one process, so the oracle tests call this through oracle().
// Usage: node --import tsx test/oracle/llama-cpp-cli.ts < jobs.json

import { llamaGreedy, type OracleJob } from './llama-cpp.js';

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const jobs = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OracleJob[];
const out = [];
for (const j of jobs) {
  const r = await llamaGreedy(j.modelPath, j.prompt, j.steps, j.vocabSize);
  out.push({ tokens: r.tokens, probs: r.probs.map((p) => Array.from(p)) });
}
// Exit only after the pipe has taken all of it: a large write is asynchronous.
process.stdout.write(JSON.stringify(out), () => process.exit(0));

// The `hearth` command (Node): tokenize, generate, bench. With --json a command prints exactly
// one JSON object on stdout; progress and logs go to stderr. A new command adds a case to main().

import { EngineError } from '../api/errors.js';
import { describeAdapter, type GpuContext } from '../gpu/device.js';
import { acquireNodeDevice } from '../gpu/device-node.js';
import { checkSpeculative, generate } from '../engine/generate.js';
import { selfDraftLayers, type SpeculativeOptions } from '../engine/scheduler.js';
import { LocalEngine } from '../engine/local-engine.js';
import { fileSource } from '../model/file-source-node.js';
import { parseGGUF, GGUFMeta } from '../model/gguf.js';
import { loadModel, type LoadedModel } from '../model/model.js';
import { Tokenizer } from '../model/tokenizer.js';
import { Args } from './args.js';

const USAGE = `hearth — LLM inference on WebGPU

  hearth tokenize --model F.gguf --text S [--json]
  hearth generate --model F.gguf --prompt S --max-tokens N [--temperature T] [--top-k K]
                  [--top-p P] [--seed N] [--logprobs K] [--json]
                  [--speculative '{"draft":"self:2","tree":{"width":2,"depth":3},"method":"spechub"}']
                  (draft "ngram" or "self:N"; sampled requests speculate with --top-k 0 --top-p 1)
  hearth bench --model F.gguf [--browser] [--prompt-tokens 128] [--decode-tokens 128] [--json]
               [--speculative JSON [--temperature T]]   (also decodes through the serving loop,
               plain and speculative; "draft" may be a GGUF path: a draft model)
  hearth chat --model F.gguf --message S [--system S] [--max-tokens N] [--temperature T]
              [--top-p P] [--top-k K] [--seed N] [--json]   (the OpenAI-shaped Engine API; streams
              the reply to stdout, or prints the ChatCompletion object with --json)
  hearth cache eval --data F.jsonl [--embedder lexical|model:F.gguf] [--threshold T | --sweep 0.5:0.95:0.05]
                    [--details] [--json]   (semantic-cache hit rate and precision on a labeled set)

  --robust   keep Dawn's bounds checks on in Node (a web page always has them; off is faster)
`;

const log = (s: string): void => {
  process.stderr.write(s + '\n');
};

export async function main(argv: string[]): Promise<number> {
  const args = new Args(argv);
  const cmd = args.positional[0];
  const json = args.bool('json');
  try {
    let out: object;
    switch (cmd) {
      case 'tokenize':
        out = await tokenize(args);
        break;
      case 'generate':
        out = await runGenerate(args);
        break;
      case 'bench':
        out = await bench(args);
        break;
      case 'chat': {
        const r = await runChat(args, json);
        if (!r) return 0; // streamed to stdout already
        out = r;
        break;
      }
      case 'cache': {
        const { cacheCommand } = await import('./cache-eval.js');
        out = await cacheCommand(args);
        break;
      }
      case undefined:
      case 'help':
        process.stdout.write(USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        throw new EngineError('BAD_REQUEST', `Unknown command '${cmd}'.\n${USAGE}`);
    }
    process.stdout.write((json ? JSON.stringify(out) : human(out)) + '\n');
    return 0;
  } catch (e) {
    const err = e instanceof EngineError ? e : new EngineError('GPU_ERROR', `Unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    if (json) process.stdout.write(JSON.stringify({ error: err.toJSON() }) + '\n');
    log(`hearth: ${err.code}: ${err.message}`);
    return 1;
  }
}

function human(o: object): string {
  if ('text' in o && typeof o.text === 'string') return o.text;
  return JSON.stringify(o, null, 2);
}

async function tokenize(args: Args): Promise<{ tokens: number[] }> {
  const src = await fileSource(args.need('model'));
  try {
    const file = await parseGGUF(src);
    const tok = Tokenizer.fromGGUF(new GGUFMeta(file.metadata));
    return { tokens: tok.encode(args.need('text'), { addBos: false, parseSpecial: true }) };
  } finally {
    await src.close?.();
  }
}

async function withModel<T>(args: Args, fn: (m: LoadedModel, ctx: GpuContext, loadMs: number) => Promise<T>, draftPath?: string): Promise<T> {
  const path = args.need('model');
  const src = await fileSource(path);
  const draft = draftPath !== undefined ? await fileSource(draftPath) : undefined;
  const ctx = await acquireNodeDevice({ robustness: args.bool('robust') });
  log(`hearth: adapter ${describeAdapter(ctx.adapter)}`);
  const t0 = performance.now();
  let lastPct = -1;
  let model: LoadedModel;
  try {
    model = await loadModel(ctx, src, {
      ...(args.int('ctx') !== undefined ? { maxContext: args.int('ctx')! } : {}),
      ...(draft ? { draft } : {}),
      onProgress: (done, total) => {
        const pct = Math.floor((100 * done) / total);
        if (pct >= lastPct + 10) {
          lastPct = pct;
          log(`hearth: loading ${pct}%`);
        }
      },
    });
  } catch (e) {
    await src.close?.();
    await draft?.close?.();
    throw e;
  }
  const loadMs = performance.now() - t0;
  try {
    return await fn(model, ctx, loadMs);
  } finally {
    model.destroy();
    await src.close?.();
    await draft?.close?.();
  }
}

/**
 * --speculative JSON, checked; a `draft` that is not 'ngram', 'self:N' or 'model' is a GGUF path,
 * loaded beside the model (returned as draftPath) and used as draft 'model'.
 */
function speculativeArg(args: Args): { speculative?: SpeculativeOptions; draftPath?: string } {
  const specJson = args.str('speculative');
  if (specJson === undefined) return {};
  let o: SpeculativeOptions;
  try {
    o = JSON.parse(specJson) as SpeculativeOptions;
  } catch {
    throw new EngineError('BAD_REQUEST', `--speculative must be a JSON object such as '{"draft":"ngram","depth":4}' (got ${specJson}).`);
  }
  const d = typeof o === 'object' && o !== null ? String(o.draft) : '';
  const isPath = d !== 'ngram' && d !== 'model' && selfDraftLayers(d) === null && /\.gguf$/i.test(d);
  const speculative = checkSpeculative(isPath ? { ...o, draft: 'model' } : o);
  return isPath ? { speculative, draftPath: d } : { speculative };
}

async function runGenerate(args: Args): Promise<object> {
  const { speculative, draftPath } = speculativeArg(args);
  return withModel(
    args,
    async (model, _ctx, loadMs) => {
      const logprobs = args.int('logprobs', 0)!;
      const r = await generate(model, {
        prompt: args.need('prompt'),
        maxTokens: args.int('max-tokens', 64)!,
        temperature: args.num('temperature', 0.8)!,
        topK: args.int('top-k', 40)!,
        topP: args.num('top-p', 0.95)!,
        ...(args.int('seed') !== undefined ? { seed: args.int('seed')! } : {}),
        logprobs,
        ...(speculative ? { speculative } : {}),
      });
      const st = model.scheduler.stats();
      return {
        prompt_tokens: r.promptTokens,
        tokens: r.tokens,
        text: r.text,
        ...(logprobs > 0 ? { logprobs: r.logprobs } : {}),
        finish_reason: r.finishReason,
        timings: { load_ms: loadMs, prefill_tokens_per_s: r.timings.prefillTokensPerS, decode_tokens_per_s: r.timings.decodeTokensPerS },
        ...(speculative ? { speculative: { drafted_tokens: st.draftedTokens, accepted_tokens: st.acceptedDraftTokens, verify_steps: st.verifySteps } } : {}),
      };
    },
    draftPath,
  );
}

async function runChat(args: Args, json: boolean): Promise<object | null> {
  return withModel(args, async (model) => {
    const engine = new LocalEngine(model, { modelName: args.need('model') });
    const system = args.str('system');
    const params = {
      messages: [...(system !== undefined ? [{ role: 'system' as const, content: system }] : []), { role: 'user' as const, content: args.need('message') }],
      ...(args.int('max-tokens') !== undefined ? { max_tokens: args.int('max-tokens')! } : {}),
      ...(args.num('temperature') !== undefined ? { temperature: args.num('temperature')! } : {}),
      ...(args.num('top-p') !== undefined ? { top_p: args.num('top-p')! } : {}),
      ...(args.int('top-k') !== undefined ? { top_k: args.int('top-k')! } : {}),
      ...(args.int('seed') !== undefined ? { seed: args.int('seed')! } : {}),
    };
    if (json) return engine.chat.completions.create(params);
    for await (const chunk of await engine.chat.completions.create({ ...params, stream: true })) process.stdout.write(chunk.choices[0]?.delta.content ?? '');
    process.stdout.write('\n');
    return null;
  });
}

async function bench(args: Args): Promise<object> {
  const promptTokens = args.int('prompt-tokens', 128)!;
  const decodeTokens = args.int('decode-tokens', 128)!;
  const { speculative, draftPath } = speculativeArg(args);
  if (args.bool('browser')) {
    if (speculative) throw new EngineError('BAD_REQUEST', '--speculative is measured in Node (drop --browser).');
    const { benchInBrowser } = await import('../../bench/browser.js');
    return benchInBrowser({ model: args.need('model'), promptTokens, decodeTokens });
  }
  return withModel(
    args,
    async (model, ctx) => {
      const { benchModel, benchSpeculative } = await import('../engine/bench.js');
      const r = await benchModel(model, { promptTokens, decodeTokens });
      const spec = speculative
        ? { speculative: await benchSpeculative(model, { promptTokens, decodeTokens, speculative, temperature: args.num('temperature', 0)! }) }
        : {};
      return { backend: `node-dawn${args.bool('robust') ? '' : ' (robustness off)'}`, adapter: describeAdapter(ctx.adapter), ...r, ...spec };
    },
    draftPath,
  );
}

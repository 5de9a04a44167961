// `hearth bench --browser`: the engine in a Web Worker inside headless Chromium, driven through
// demo/bench.html's window.hearthBench; also the Vite + Chromium launcher the browser tests share.
// New peers (wllama) get their own page and a function beside benchInBrowser.

import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build, createServer, preview } from 'vite';
import { EngineError, type ErrorCode, type ErrorDetails } from '../src/api/errors.js';
import { hearthViteConfig } from '../vite.config.js';

/**
 * Chromium flags, checked on Debian's chromium 156 as root, headless: `--enable-unsafe-webgpu`
 * alone gives a module worker on an http://localhost page a WebGPU adapter (SwiftShader, which
 * Chromium picks by itself: no --use-angle / --use-webgpu-adapter / --enable-features=Vulkan
 * needed). `--no-sandbox` because we run as root; the rest keep Chromium off the (closed) network.
 */
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // Extra flags for an experiment, e.g. HEARTH_CHROMIUM_ARGS=--enable-dawn-features=disable_robustness.
  ...(process.env.HEARTH_CHROMIUM_ARGS ?? '').split(/\s+/).filter((a) => a !== ''),
];

export const CHROMIUM_PATH = process.env.HEARTH_CHROMIUM ?? '/usr/bin/chromium';

const log = (s: string): void => {
  process.stderr.write(`hearth: ${s}\n`);
};

export interface BrowserSession {
  /** e.g. http://localhost:41234/ — pages are `${baseUrl}bench.html`, models `${baseUrl}models/<file>`. */
  baseUrl: string;
  browser: Browser;
  /** A new page with its console errors and crashes forwarded to stderr. */
  newPage(path: string): Promise<Page>;
  close(): Promise<void>;
}

export interface BrowserSessionOptions {
  /** Directories served as /models/<file>. */
  modelDirs: string[];
  /** Forward every page console message to stderr, not only errors. */
  verbose?: boolean;
  /**
   * Serve a production build (vite build + vite preview) instead of the dev server: what a user
   * gets, with no on-the-fly transforms. The dev server is needed to import repo modules by /@fs/ path.
   */
  production?: boolean;
}

interface Served {
  httpServer: Server | null;
  close(): Promise<void>;
}

/** The dev server, or a build in a temp dir behind the preview server; listening on a free port. */
async function serve(o: BrowserSessionOptions): Promise<Served> {
  const config = hearthViteConfig({ modelDirs: o.modelDirs, port: 0 });
  // logLevel 'warn': Vite's info lines go to stdout, which the CLI keeps for its one JSON object.
  const quiet = { configFile: false as const, logLevel: 'warn' as const, clearScreen: false };
  if (!o.production) {
    const server = await createServer({ ...config, ...quiet });
    try {
      await server.listen();
    } catch (e) {
      await server.close();
      throw e;
    }
    return { httpServer: server.httpServer as Server | null, close: () => server.close() };
  }
  const outDir = mkdtempSync(join(tmpdir(), 'hearth-demo-'));
  const removeOut = (): void => rmSync(outDir, { recursive: true, force: true });
  try {
    await build({ ...config, ...quiet, build: { ...config.build, outDir, emptyOutDir: true } });
    const server = await preview({
      ...config,
      ...quiet,
      build: { ...config.build, outDir },
      preview: { ...config.preview, host: 'localhost', port: 0 },
    });
    return {
      httpServer: server.httpServer as Server | null,
      close: async () => {
        await server.close();
        removeOut();
      },
    };
  } catch (e) {
    removeOut();
    throw e;
  }
}

/** A Vite dev server for demo/ on a free localhost port, and headless Chromium with WebGPU. */
export async function startBrowserSession(o: BrowserSessionOptions): Promise<BrowserSession> {
  if (!existsSync(CHROMIUM_PATH))
    throw new EngineError(
      'WEBGPU_UNAVAILABLE',
      `Chromium was not found at ${CHROMIUM_PATH}. Install it (apt-get install chromium) or set HEARTH_CHROMIUM to its path.`,
      {
        path: CHROMIUM_PATH,
      },
    );
  const server = await serve(o);
  let browser: Browser | null = null;
  try {
    const addr = server.httpServer?.address();
    if (!addr || typeof addr === 'string') throw new Error('hearth internal error: Vite did not report a TCP port');
    // localhost, not 127.0.0.1: WebGPU needs a secure context, and only the name counts as one.
    const baseUrl = `http://localhost:${addr.port}/`;
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
    const b = browser;
    return {
      baseUrl,
      browser: b,
      async newPage(path) {
        const page = await b.newPage();
        page.on('console', (m) => {
          if (o.verbose || m.type() === 'error') log(`[page ${m.type()}] ${m.text()}`);
        });
        page.on('pageerror', (e) => log(`[page error] ${e.stack ?? e.message}`));
        page.on('crash', () => log('[page crashed]'));
        await page.goto(baseUrl + path.replace(/^\//, ''));
        return page;
      },
      async close() {
        await b.close().catch(() => undefined);
        await server.close().catch(() => undefined);
      },
    };
  } catch (e) {
    await browser?.close().catch(() => undefined);
    await server.close().catch(() => undefined);
    throw e;
  }
}

export interface BrowserBenchOptions {
  /** Path of a GGUF file on this machine. */
  model: string;
  promptTokens: number;
  decodeTokens: number;
  maxContext?: number;
}

export interface BrowserBenchResult {
  backend: 'chromium-worker';
  adapter: string;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  prompt_tokens: number;
  decode_tokens: number;
  is_fallback: boolean;
  model: string;
  load_ms: number;
  gpu_bytes: number;
  user_agent: string;
}

type Outcome = { ok: true; result: BrowserBenchResult } | { ok: false; error: { code: ErrorCode; message: string; details: ErrorDetails } };

/** Run demo/bench.html's hearthBench headlessly on one model file; errors come back as EngineErrors. */
export async function benchInBrowser(o: BrowserBenchOptions): Promise<BrowserBenchResult> {
  const path = resolve(o.model);
  if (!existsSync(path) || !statSync(path).isFile()) throw new EngineError('BAD_REQUEST', `Model file ${path} does not exist.`, { path });
  log('building the demo pages, starting vite preview and headless Chromium');
  const session = await startBrowserSession({ modelDirs: [dirname(path)], production: true });
  try {
    const page = await session.newPage('bench.html');
    await page.waitForFunction(() => typeof window.hearthBench === 'function');
    log(`benchmarking ${basename(path)} in a worker (${o.promptTokens} prompt + ${o.decodeTokens} decode tokens)`);
    // The callback is serialised into the page: under tsx, esbuild's keepNames wraps named inner
    // functions in a `__name` helper the page lacks, so keep it free of local function declarations.
    const outcome = await page.evaluate(
      async (a): Promise<Outcome> => {
        try {
          const result = await window.hearthBench({
            model: a.url,
            promptTokens: a.promptTokens,
            decodeTokens: a.decodeTokens,
            ...(a.maxContext !== null ? { maxContext: a.maxContext } : {}),
          });
          return { ok: true, result };
        } catch (e) {
          const x = e as { code?: ErrorCode; message?: string; details?: ErrorDetails };
          return { ok: false, error: { code: x.code ?? 'GPU_ERROR', message: x.message ?? String(e), details: x.details ?? {} } };
        }
      },
      { url: `/models/${encodeURIComponent(basename(path))}`, promptTokens: o.promptTokens, decodeTokens: o.decodeTokens, maxContext: o.maxContext ?? null },
    );
    if (!outcome.ok) throw EngineError.fromJSON(outcome.error);
    return outcome.result;
  } finally {
    await session.close();
  }
}

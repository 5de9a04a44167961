// Vite config for the demo pages (demo/index.html chat, demo/bench.html benchmark) and the model
// file server they fetch from. Add a page to PAGES; add a model directory to modelDirs.

import { createReadStream, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin, type UserConfig } from 'vite';

const REPO = dirname(fileURLToPath(import.meta.url));
const DEMO = join(REPO, 'demo');
const PAGES = ['index', 'bench'] as const;

/**
 * Cross-origin isolation (SharedArrayBuffer, so wllama's WASM threads) for every response the
 * server gives. Same-origin resources need no CORP header under require-corp.
 */
export const ISOLATION_HEADERS: Record<string, string> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** Directories /models/<name> is served from, first match wins: HEARTH_MODEL_DIR (default test/fixtures/out), demo/models, bench/out. */
export function defaultModelDirs(): string[] {
  const env = process.env.HEARTH_MODEL_DIR;
  return [resolve(REPO, env && env.length > 0 ? env : 'test/fixtures/out'), join(DEMO, 'models'), resolve(REPO, 'bench/out')];
}

type Next = (err?: unknown) => void;

/**
 * Serves `GET /models/<file>` from the first model directory holding it (with Range support so
 * a later streaming loader can read slices), and `GET /models/index.json` listing the .gguf files.
 */
export function modelFiles(modelDirs: string[]): Plugin {
  const handler = (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith('/models/') || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    const name = decodeURIComponent(url.pathname.slice('/models/'.length));
    if (name === 'index.json' || name === '') {
      const names = new Set<string>();
      for (const d of modelDirs) if (existsSync(d)) for (const f of readdirSync(d)) if (f.endsWith('.gguf')) names.add(f);
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify([...names].sort()));
      return;
    }
    // One path segment only: no traversal out of the model directories.
    if (name !== basename(name) || name.startsWith('.')) return next();
    const file = modelDirs.map((d) => join(d, name)).find((p) => existsSync(p) && statSync(p).isFile());
    if (!file) {
      res.statusCode = 404;
      res.setHeader('Content-Type', 'text/plain');
      res.end(`No model file '${name}' in ${modelDirs.join(', ')}`);
      return;
    }
    const size = statSync(file).size;
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Cache-Control', 'no-cache');
    let start = 0;
    let end = size - 1;
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      if (range[1] === '' && range[2] !== '') start = Math.max(0, size - Number(range[2]));
      else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(end, Number(range[2]));
      }
      if (start > end || start >= size) {
        res.statusCode = 416;
        res.setHeader('Content-Range', `bytes */${size}`);
        res.end();
        return;
      }
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    }
    res.setHeader('Content-Length', String(end - start + 1));
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    createReadStream(file, { start, end }).pipe(res);
  };
  return {
    name: 'hearth-model-files',
    configureServer(server) {
      server.middlewares.use(handler);
    },
    configurePreviewServer(server) {
      server.middlewares.use(handler);
    },
  };
}

/** Largest file the service worker precaches; bigger ones (wllama's WASM, for bench.html) are cached when first fetched. */
const PRECACHE_MAX_BYTES = 2 * 2 ** 20;

/**
 * Writes `precache.json` into a build: the app shell the service worker (demo/public/sw.js)
 * caches at install, so the chat page opens offline. Hashed names are only known here.
 */
export function precacheList(): Plugin {
  let outDir = '';
  return {
    name: 'hearth-precache-list',
    apply: 'build',
    configResolved(c) {
      outDir = c.build.outDir;
    },
    closeBundle() {
      if (!existsSync(outDir)) return;
      const files: string[] = [];
      const walk = (d: string): void => {
        for (const f of readdirSync(d, { withFileTypes: true })) {
          const p = join(d, f.name);
          if (f.isDirectory()) walk(p);
          else if (f.name !== 'sw.js' && f.name !== 'precache.json' && statSync(p).size <= PRECACHE_MAX_BYTES)
            files.push(relative(outDir, p).split('\\').join('/'));
        }
      };
      walk(outDir);
      writeFileSync(join(outDir, 'precache.json'), JSON.stringify(files.sort()));
    },
  };
}

export interface HearthViteOptions {
  modelDirs?: string[];
  /** 0 picks a free port (the CLI and the browser tests do). */
  port?: number;
}

/** The full config; bench/browser.ts and test/browser/run.mjs call this with their own model dir. */
export function hearthViteConfig(o: HearthViteOptions = {}): UserConfig {
  return {
    root: DEMO,
    // Vite's own dep cache next to node_modules, not inside demo/.
    cacheDir: join(REPO, 'node_modules/.vite'),
    plugins: [modelFiles(o.modelDirs ?? defaultModelDirs()), precacheList()],
    worker: { format: 'es' },
    // Prebundled up front so a first page load never triggers a dep re-optimisation reload.
    optimizeDeps: {
      include: ['comlink'],
      entries: PAGES.map((p) => `${p}.html`),
    },
    server: {
      host: 'localhost',
      ...(o.port !== undefined ? { port: o.port, strictPort: o.port !== 0 } : {}),
      headers: ISOLATION_HEADERS,
      // Pages import ../src and ../shaders (?raw); the repo is the boundary.
      fs: { allow: [REPO] },
    },
    preview: { headers: ISOLATION_HEADERS },
    build: {
      outDir: join(REPO, 'dist/demo'),
      emptyOutDir: true,
      target: 'es2022',
      rolldownOptions: {
        input: Object.fromEntries(PAGES.map((p) => [p, join(DEMO, `${p}.html`)])),
      },
    },
  };
}

export default defineConfig(() => hearthViteConfig());

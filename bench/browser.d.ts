import { type Browser, type Page } from 'playwright-core';
/**
 * Chromium flags, checked on Debian's chromium 156 as root, headless: `--enable-unsafe-webgpu`
 * alone gives a module worker on an http://localhost page a WebGPU adapter (SwiftShader, which
 * Chromium picks by itself: no --use-angle / --use-webgpu-adapter / --enable-features=Vulkan
 * needed). `--no-sandbox` because we run as root; the rest keep Chromium off the (closed) network.
 */
export declare const CHROMIUM_ARGS: string[];
export declare const CHROMIUM_PATH: string;
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
/** A Vite dev server for demo/ on a free localhost port, and headless Chromium with WebGPU. */
export declare function startBrowserSession(o: BrowserSessionOptions): Promise<BrowserSession>;
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
/** Run demo/bench.html's hearthBench headlessly on one model file; errors come back as EngineErrors. */
export declare function benchInBrowser(o: BrowserBenchOptions): Promise<BrowserBenchResult>;

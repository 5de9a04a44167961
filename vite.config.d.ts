import { type Plugin, type UserConfig } from 'vite';
/**
 * Cross-origin isolation (SharedArrayBuffer, so wllama's WASM threads) for every response the
 * server gives. Same-origin resources need no CORP header under require-corp.
 */
export declare const ISOLATION_HEADERS: Record<string, string>;
/** Directories /models/<name> is served from, first match wins: HEARTH_MODEL_DIR, then demo/models. */
export declare function defaultModelDirs(): string[];
/**
 * Serves `GET /models/<file>` from the first model directory holding it (with Range support so
 * a later streaming loader can read slices), and `GET /models/index.json` listing the .gguf files.
 */
export declare function modelFiles(modelDirs: string[]): Plugin;
export interface HearthViteOptions {
    modelDirs?: string[];
    /** 0 picks a free port (the CLI and the browser tests do). */
    port?: number;
}
/** The full config; bench/browser.ts and test/browser/run.mjs call this with their own model dir. */
export declare function hearthViteConfig(o?: HearthViteOptions): UserConfig;
declare const _default: import("vite").UserConfigFnObject;
export default _default;

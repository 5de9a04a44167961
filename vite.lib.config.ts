// Library build: dist/index.js (browser + Node ESM, WGSL inlined) and dist/node.js (Node-only
// device and file helpers). Declarations come from tsconfig.build.json.
import { defineConfig } from 'vite';

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    sourcemap: true,
    minify: false,
    lib: {
      entry: { index: 'src/index.ts', node: 'src/node.ts' },
      formats: ['es'],
    },
    rollupOptions: {
      external: [/^node:/, 'webgpu', 'comlink', '@huggingface/jinja'],
    },
  },
});

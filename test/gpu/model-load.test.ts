// Loading errors and resource checks on a real device: every bad input is an EngineError with a
// code that names the tensor and offset, and nothing is allocated before the checks pass.

import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { deviceFromGpu } from '../../src/gpu/device.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { GGMLType, parseGGUF } from '../../src/model/gguf.js';
import { loadModel } from '../../src/model/model.js';
import { buildFixture, FIXTURES, fixturePath } from '../fixtures/models.js';
import { gpu } from './helpers.js';

async function loadError(bytes: Uint8Array, ctxOverride?: Partial<Awaited<ReturnType<typeof gpu>>>): Promise<EngineError> {
  const ctx = { ...(await gpu()), ...ctxOverride };
  try {
    await loadModel(ctx, bufferSource(bytes), { maxContext: 64 });
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    return e as EngineError;
  }
  throw new Error('expected the load to fail');
}

/** Rewrite the ggml type of one tensor in a GGUF's tensor table (type sits after name and dims). */
async function retype(bytes: Uint8Array, tensor: string, type: number): Promise<Uint8Array> {
  const file = await parseGGUF(bufferSource(bytes));
  const info = file.tensors.find((t) => t.name === tensor)!;
  const name = new TextEncoder().encode(tensor);
  // Find the tensor-info record: u64 name length, name bytes, u32 nDims, u64 dims...
  for (let i = 0; i < file.dataOffset; i++) {
    if (bytes[i] !== name.length || bytes[i + 8 + name.length - 1] !== name[name.length - 1]) continue;
    if (new TextDecoder().decode(bytes.subarray(i + 8, i + 8 + name.length)) !== tensor) continue;
    const out = bytes.slice();
    const typeAt = i + 8 + name.length + 4 + 8 * info.dims.length;
    new DataView(out.buffer).setUint32(typeAt, type, true);
    return out;
  }
  throw new Error('tensor record not found');
}

describe('model loading', () => {
  const good = readFileSync(fixturePath('llama-q8_0'));

  test('a truncated file is BAD_MODEL_FILE naming the tensor that runs past the end', async () => {
    const e = await loadError(good.subarray(0, good.length - 1000));
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.details.tensor).toBeTypeOf('string');
    expect(e.message).toMatch(/needs bytes .* but the file has/);
  });

  test('an unsupported tensor type is UNSUPPORTED_TENSOR_TYPE with tensor and offset, before any allocation', async () => {
    // Q5_K has the same block size (256 elements) so the file stays well-formed.
    const bytes = await retype(buildFixture({ ...FIXTURES['llama-q4_k']!, name: 'q5k-probe' }), 'blk.1.ffn_up.weight', GGMLType.Q5_K);
    const ctx = await gpu();
    let created = 0;
    const counting = new Proxy(ctx.device, {
      get(target, prop, recv) {
        if (prop === 'createBuffer') return (d: GPUBufferDescriptor) => (created++, target.createBuffer(d));
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const e = await loadError(bytes, { device: counting });
    expect(e.code).toBe('UNSUPPORTED_TENSOR_TYPE');
    expect(e.details.tensor).toBe('blk.1.ffn_up.weight');
    expect(e.details.offset).toBeTypeOf('number');
    expect(e.message).toContain('Q5_K');
    expect(created).toBe(0);
  });

  test('a tensor larger than the device can bind is MODEL_TOO_LARGE with the numbers', async () => {
    const ctx = await gpu();
    const limits = { ...ctx.limits, maxStorageBufferBindingSize: 4096 } as GPUSupportedLimits;
    const e = await loadError(good, { limits });
    expect(e.code).toBe('MODEL_TOO_LARGE');
    expect(e.details.maxStorageBufferBindingSize).toBe(4096);
    expect(Number(e.details.sizeBytes)).toBeGreaterThan(4096);
  });

  test('a missing tensor is BAD_MODEL_FILE naming it', async () => {
    const spec = FIXTURES['llama-f32']!;
    const renamed = buildFixture(spec);
    const at = Buffer.from(renamed).indexOf('blk.1.ffn_gate.weight');
    renamed[at + 4] = 'X'.charCodeAt(0); // 'blk.1.ffn_gate' -> 'blk.X.ffn_gate'
    const e = await loadError(renamed);
    expect(e.code).toBe('BAD_MODEL_FILE');
    expect(e.details.tensor).toBe('blk.1.ffn_gate.weight');
  });

  test('no WebGPU is WEBGPU_UNAVAILABLE with what to do', async () => {
    await expect(deviceFromGpu(undefined, 'browser')).rejects.toMatchObject({ code: 'WEBGPU_UNAVAILABLE' });
    const noAdapter = { requestAdapter: () => Promise.resolve(null) } as unknown as GPU;
    await expect(deviceFromGpu(noAdapter, 'node')).rejects.toMatchObject({ code: 'WEBGPU_UNAVAILABLE', message: expect.stringMatching(/Vulkan/) as unknown });
  });

  test('an aborted load stops between weight chunks with ABORTED, frees every buffer it made, leaves no error scope open, and the device loads again', async () => {
    const ctx = await gpu();
    let created = 0;
    let destroyed = 0;
    const counting = new Proxy(ctx.device, {
      get(target, prop, recv) {
        if (prop === 'createBuffer')
          return (d: GPUBufferDescriptor) => {
            created++;
            const b = target.createBuffer(d);
            const destroy = b.destroy.bind(b);
            b.destroy = () => {
              destroyed++;
              destroy();
            };
            return b;
          };
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const ac = new AbortController();
    let progress = 0;
    const e = await loadModel({ ...ctx, device: counting }, bufferSource(good), {
      maxContext: 64,
      signal: ac.signal,
      onProgress: (loaded, total) => {
        progress = loaded;
        if (loaded > 0 && loaded < total) ac.abort();
      },
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('ABORTED');
    expect((e as EngineError).details.loadedBytes).toBe(progress);
    expect(Number((e as EngineError).details.totalBytes)).toBeGreaterThan(progress);
    expect(created).toBeGreaterThan(0);
    expect(destroyed).toBe(created);
    // The load's out-of-memory scope was popped: the device's stack is empty again.
    await expect(ctx.device.popErrorScope()).rejects.toThrow();
    // An already-aborted signal allocates nothing.
    created = 0;
    await expect(loadModel({ ...ctx, device: counting }, bufferSource(good), { maxContext: 64, signal: ac.signal })).rejects.toMatchObject({
      code: 'ABORTED',
    });
    expect(created).toBe(0);
    const m = await loadModel(ctx, bufferSource(good), { maxContext: 64 });
    expect(m.cfg.numLayers).toBeGreaterThan(0);
    m.destroy();
  });

  test('tied embeddings: a model without output.weight reads token_embd for its head', async () => {
    const m = await loadModel(await gpu(), bufferSource(readFileSync(fixturePath('llama-q4_0'))), { maxContext: 32 });
    expect(m.cfg.tiedEmbeddings).toBe(true);
    expect(m.weights.output).toBe(m.weights.tokEmbd);
    m.destroy();
  });
});

describe('stacked weights', () => {
  test('q|k|v and gate|up stack into one weight when their types match, else load as parts at their columns', async () => {
    const same = await loadModel(await gpu(), bufferSource(readFileSync(fixturePath('llama-q8_0'))), { maxContext: 16 });
    expect(same.weights.layers[0]!.qkv).toHaveLength(1);
    expect(same.weights.layers[0]!.gateUp).toHaveLength(1);
    same.destroy();
    const mixed = await loadModel(await gpu(), bufferSource(readFileSync(fixturePath('qwen2-q8_0'))), { maxContext: 16 });
    const parts = mixed.weights.layers[0]!.qkv;
    expect(parts.map((p) => p.col)).toEqual([0, mixed.cfg.numHeads * mixed.cfg.headDim, (mixed.cfg.numHeads + mixed.cfg.numKvHeads) * mixed.cfg.headDim]);
    expect(parts.every((p) => p.bias !== undefined)).toBe(true);
    mixed.destroy();
  });
});

describe('GPU memory budget', () => {
  test('a model over the budget is MODEL_TOO_LARGE with the numbers, before any allocation', async () => {
    const ctx = await gpu();
    let created = 0;
    const counting = new Proxy(ctx.device, {
      get(target, prop, recv) {
        if (prop === 'createBuffer') return (d: GPUBufferDescriptor) => (created++, target.createBuffer(d));
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const bytes = readFileSync(fixturePath('llama-q8_0'));
    const err = await loadModel({ ...ctx, device: counting }, bufferSource(bytes), { maxContext: 64, gpuBudgetBytes: 1 << 20 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MODEL_TOO_LARGE', details: { budgetBytes: 1 << 20 } });
    expect(Number((err as EngineError).details.neededBytes)).toBeGreaterThan(1 << 20);
    expect(created).toBe(0);
  });

  test('the estimate the budget check uses matches what the runner allocates', async () => {
    const m = await loadModel(await gpu(), bufferSource(readFileSync(fixturePath('qwen2-f32'))), { maxContext: 96, maxBatch: 32, gpuBudgetBytes: 1 << 30 });
    const { ModelRunner } = await import('../../src/model/forward.js');
    const est = ModelRunner.estimateBytes(m.cfg, m.runner.opts);
    expect(est).toBeGreaterThanOrEqual(0.9 * m.runner.runtimeBytes);
    expect(est).toBeLessThanOrEqual(1.1 * m.runner.runtimeBytes);
    m.destroy();
  });
});

// A device lost mid-generation (here: destroyed, as a driver reset or a tab's GPU process crash would
// lose it): the requests in flight end with EngineError DEVICE_LOST, not the bare DOMException that
// mapAsync rejects with, and later requests are refused with the same code until a reload.

import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { EngineError } from '../../src/api/errors.js';
import { LocalEngine } from '../../src/engine/local-engine.js';
import { acquireNodeDevice } from '../../src/gpu/device-node.js';
import { bufferSource } from '../../src/model/byte-source.js';
import { fixturePath } from '../fixtures/models.js';

test('requests in flight when the device is lost end with DEVICE_LOST, and so do later ones', async () => {
  // A device of its own: the shared one must survive this file.
  const ctx = await acquireNodeDevice();
  const engine = await LocalEngine.load(ctx, bufferSource(readFileSync(fixturePath('llama-f32'))), { maxContext: 128 });
  const whole = engine.completions.create({ prompt: 'The little dog ran', max_tokens: 60, temperature: 0 }).catch((e: unknown) => e);
  const stream = await engine.completions.create({ prompt: 'Once upon a time', max_tokens: 60, temperature: 0, stream: true });
  let chunks = 0;
  let streamError: unknown = null;
  try {
    for await (const c of stream) if (c.choices[0]!.text !== '' && ++chunks === 3) ctx.device.destroy();
  } catch (e) {
    streamError = e;
  }
  expect(chunks).toBe(3);
  for (const e of [streamError, await whole]) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('DEVICE_LOST');
    expect((e as EngineError).message).toMatch(/Reload the model/);
  }
  await expect(engine.completions.create({ prompt: 'x', max_tokens: 2 })).rejects.toMatchObject({ code: 'DEVICE_LOST' });
  await engine.unload();
});

// The ceiling probes' read buffer: asked for more than the device will allocate (SwiftShader's heap
// refuses 1 GiB), it halves until an allocation succeeds instead of timing passes over an invalid
// buffer (which once reported an infinite bandwidth). And the split-K bound of the attention kernel.

import { describe, expect, it } from 'vitest';
import { attentionSplits } from '../../src/kernels/attention.js';
import { probeReadBuffer } from '../../src/gpu/probes.js';
import { gpu } from './helpers.js';

describe('probeReadBuffer', () => {
  it('halves past an out-of-memory refusal and leaves no error behind', async () => {
    const ctx = await gpu();
    const asked = Math.min(ctx.limits.maxBufferSize, 8 * 2 ** 30);
    ctx.device.pushErrorScope('validation');
    ctx.device.pushErrorScope('out-of-memory');
    const buf = await probeReadBuffer(ctx.device, asked);
    expect(await ctx.device.popErrorScope()).toBeNull();
    expect(await ctx.device.popErrorScope()).toBeNull();
    try {
      expect(buf.size % 16).toBe(0);
      expect(buf.size).toBeGreaterThanOrEqual(1 << 20);
      expect(buf.size).toBeLessThanOrEqual(asked);
      // SwiftShader cannot allocate a GiB: the halving ran (on a GPU with room, the first try holds).
      if (ctx.adapter.isFallback && asked >= 2 ** 30) expect(buf.size).toBeLessThan(asked);
    } finally {
      buf.destroy();
    }
  });
});

describe('attentionSplits', () => {
  it('keeps every split step within the partials buffer (256 parts, 16 splits) and leaves busy steps unsplit', () => {
    for (let heads = 1; heads <= 64; heads++) {
      for (let tokens = 1; tokens <= 600; tokens++) {
        const s = attentionSplits(tokens, heads);
        expect(Number.isInteger(s) && s >= 1 && s <= 16).toBe(true);
        if (s > 1) expect(s * tokens * heads).toBeLessThanOrEqual(256);
        if (tokens * heads >= 128) expect(s).toBe(1);
      }
    }
    expect(attentionSplits(1, 16)).toBe(16); // a decode step of a 16-head model: 256 workgroups
    expect(attentionSplits(1, 32)).toBe(8);
  });
});

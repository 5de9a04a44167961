// The readback pacer (src/gpu/pacing.ts): when a step's map is requested, learned per kind of step.

import { describe, expect, it } from 'vitest';
import { ReadbackPacer } from '../../src/gpu/pacing.js';

describe('ReadbackPacer', () => {
  it('never delays when disabled (browsers, real GPUs), and learns nothing', () => {
    const p = new ReadbackPacer(false);
    p.record('step:1:1', 0, 100);
    expect(p.expected('step:1:1')).toBeUndefined();
    expect(p.delayMs('step:1:1', 1000, 1000)).toBe(0);
  });

  it('maps at once for a kind of step it has not seen, then waits 80 % of what that kind took', () => {
    const p = new ReadbackPacer(true);
    expect(p.delayMs('step:1:1', 1000, 1000)).toBe(0);
    p.record('step:1:1', 1000, 1100);
    expect(p.expected('step:1:1')).toBe(100);
    expect(p.delayMs('step:1:1', 2000, 2000)).toBeCloseTo(80, 9);
    // Time already spent since the submit (encoding, other work) counts.
    expect(p.delayMs('step:1:1', 2000, 2030)).toBeCloseTo(50, 9);
    // Under 4 ms left is not worth a timer.
    expect(p.delayMs('step:1:1', 2000, 2077)).toBe(0);
    // Other kinds of step are learned separately.
    expect(p.delayMs('step:8:8', 2000, 2000)).toBe(0);
  });

  it('an unseen token count borrows an estimate from its kind: what fewer tokens took, a pro-rata share of more', () => {
    const p = new ReadbackPacer(true);
    p.record('step:1:40', 0, 200);
    // 41 tokens cost at least what 40 did; a borrowed estimate is trusted at 60 %, then 80 % of that is waited.
    expect(p.bound('step:1:41')).toBe(200);
    expect(p.delayMs('step:1:41', 1000, 1000)).toBeCloseTo(200 * 0.6 * 0.8, 9);
    p.record('step:1:256', 0, 1000);
    // 100 tokens: at least 40's 200 ms and at least 100/256 of 256's 1000 ms; the larger bound holds.
    expect(p.bound('step:1:100')).toBeCloseTo((1000 * 100) / 256, 9);
    expect(p.bound('step:1:20')).toBeCloseTo((200 * 20) / 40, 9);
    // Another kind (8 output rows), or a key without a token count, borrows nothing.
    expect(p.bound('step:8:41')).toBeUndefined();
    expect(p.delayMs('step:8:41', 1000, 1000)).toBe(0);
    p.record('pass', 0, 50);
    expect(p.bound('pass')).toBeUndefined();
    expect(p.delayMs('other', 1000, 1000)).toBe(0);
    // A key seen once uses its own time, not the bound.
    p.record('step:1:100', 0, 300);
    expect(p.delayMs('step:1:100', 1000, 1000)).toBeCloseTo(240, 9);
  });

  it('follows a changing step time, downwards too, smoothed', () => {
    const p = new ReadbackPacer(true);
    p.record('k', 0, 100);
    p.record('k', 0, 50);
    expect(p.expected('k')).toBeCloseTo(85, 9);
    for (let i = 0; i < 30; i++) p.record('k', 0, 50);
    expect(p.expected('k')).toBeCloseTo(50, 2);
    p.record('k', 0, 150);
    expect(p.expected('k')).toBeCloseTo(80, 2);
  });

  it('beforeMap resolves at once when there is nothing to wait for', async () => {
    const p = new ReadbackPacer(true);
    await expect(p.beforeMap('new', performance.now())).resolves.toBeUndefined();
  });
});

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

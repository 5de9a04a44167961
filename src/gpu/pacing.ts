// Waiting for a readback without spinning a CPU core. The `webgpu` package (Dawn's Node bindings)
// polls for completions with back-to-back setImmediate ticks for as long as a mapAsync is pending,
// so one core spins through every GPU wait. On a CPU-backed adapter (SwiftShader) that core is one
// the "GPU" itself runs on: measured on 2 cores, f32 decode went from 10.2–10.9 to 16.2 tok/s when
// the map was requested after most of the step had run. The pacer learns, per kind of submission,
// how long submit → mapped takes, and delays the map until `fraction` of that has passed; it
// learns downwards when it waited too long (the measured time is then the wait plus a little).

/** Paces readbacks of repeated submissions; a disabled pacer never delays (browsers, real GPUs). */
export class ReadbackPacer {
  private readonly expectedMs = new Map<string, number>();

  constructor(
    readonly enabled: boolean,
    private readonly fraction = 0.8,
    /** Waits shorter than this are not worth a timer (timers are ~1 ms coarse). */
    private readonly minWaitMs = 4,
  ) {}

  /** How long to wait before mapping the results of a `key` submission made at `submittedAt` (performance.now()). */
  delayMs(key: string, submittedAt: number, now = performance.now()): number {
    if (!this.enabled) return 0;
    const e = this.expectedMs.get(key);
    if (e === undefined) return 0;
    const wait = e * this.fraction - (now - submittedAt);
    return wait >= this.minWaitMs ? wait : 0;
  }

  /** Resolve when it is worth requesting the map (at once when nothing is known yet). */
  async beforeMap(key: string, submittedAt: number): Promise<void> {
    const ms = this.delayMs(key, submittedAt);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  /** The results of a `key` submission made at `submittedAt` are mapped now. */
  record(key: string, submittedAt: number, now = performance.now()): void {
    if (!this.enabled) return;
    const ms = now - submittedAt;
    const e = this.expectedMs.get(key);
    this.expectedMs.set(key, e === undefined ? ms : e + 0.3 * (ms - e));
  }

  /** The learned submit → mapped time of `key`, in ms (undefined before its first readback). */
  expected(key: string): number | undefined {
    return this.expectedMs.get(key);
  }
}

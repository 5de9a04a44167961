// Waiting for a readback without spinning a CPU core. The `webgpu` package (Dawn's Node bindings)
// polls for completions with back-to-back setImmediate ticks for as long as a mapAsync is pending,
// so one core spins through every GPU wait. On a CPU-backed adapter (SwiftShader) that core is one
// the "GPU" itself runs on: measured on 2 cores, f32 decode went from 10.2–10.9 to 16.2 tok/s when
// the map was requested after most of the step had run. The pacer learns, per kind of submission,
// how long submit → mapped takes, and delays the map until `fraction` of that has passed; it
// learns downwards when it waited too long (the measured time is then the wait plus a little).
//
// A key may end in `:<units>` (a step's token count): a key not seen yet then borrows an estimate
// from the keys of the same kind that were: a step of more tokens costs at least what one of fewer
// did, and at least its pro-rata share of one of more (a step's cost has a fixed part). That holds
// only when the rest of the work is alike, so the caller puts what else drives the cost into the
// kind (the forward pass: output rows and a context bucket), and a borrowed estimate is used at
// BORROWED of its value: waiting too long costs latency, mapping early only a spinning core.
// Without it, every prefill of a new prompt length mapped at once and spun a core for its whole
// run: on 2 cores a 40-token prefill of the Q4_0 bench model took 350-530 ms that way against
// 200-256 ms paced.

/** The share of a borrowed (unseen key's) estimate that is trusted. */
const BORROWED = 0.6;

/** `kind:units` → [kind, units]; a key without a numeric last segment is a kind of its own (units 0). */
function splitKey(key: string): [string, number] {
  const i = key.lastIndexOf(':');
  const units = i < 0 ? NaN : Number(key.slice(i + 1));
  return Number.isInteger(units) && units > 0 ? [key.slice(0, i), units] : [key, 0];
}

/** Paces readbacks of repeated submissions; a disabled pacer never delays (browsers, real GPUs). */
export class ReadbackPacer {
  /** Learned submit → mapped times by kind, then units. */
  private readonly learned = new Map<string, Map<number, number>>();

  constructor(
    readonly enabled: boolean,
    private readonly fraction = 0.8,
    /** Waits shorter than this are not worth a timer (timers are ~1 ms coarse). */
    private readonly minWaitMs = 4,
  ) {}

  /** How long to wait before mapping the results of a `key` submission made at `submittedAt` (performance.now()). */
  delayMs(key: string, submittedAt: number, now = performance.now()): number {
    if (!this.enabled) return 0;
    const seen = this.expected(key);
    const borrowed = seen === undefined ? this.bound(key) : undefined;
    const e = seen ?? (borrowed === undefined ? undefined : borrowed * BORROWED);
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
    const [kind, units] = splitKey(key);
    let byUnits = this.learned.get(kind);
    if (!byUnits) this.learned.set(kind, (byUnits = new Map<number, number>()));
    const e = byUnits.get(units);
    byUnits.set(units, e === undefined ? ms : e + 0.3 * (ms - e));
  }

  /** A lower bound on an unseen `kind:units` key's time from the seen keys of its kind (undefined without any). */
  bound(key: string): number | undefined {
    const [kind, units] = splitKey(key);
    const known = units > 0 ? this.learned.get(kind) : undefined;
    if (!known) return undefined;
    let best: number | undefined;
    for (const [u, ms] of known) {
      const b = u <= units ? ms : (ms * units) / u;
      if (best === undefined || b > best) best = b;
    }
    return best;
  }

  /** The learned submit → mapped time of `key`, in ms (undefined before its first readback). */
  expected(key: string): number | undefined {
    const [kind, units] = splitKey(key);
    return this.learned.get(kind)?.get(units);
  }
}

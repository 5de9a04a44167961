// Minimal flag parser for the hearth CLI: --name value, --flag, and typed getters with
// EngineError('BAD_REQUEST') on bad values. New flags need no registration.

import { EngineError } from '../api/errors.js';

export class Args {
  readonly positional: string[] = [];
  private readonly flags = new Map<string, string | true>();

  constructor(argv: string[], booleans: string[] = ['json', 'browser', 'robust', 'help', 'details']) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a.startsWith('--')) {
        const eq = a.indexOf('=');
        if (eq > 0) this.flags.set(a.slice(2, eq), a.slice(eq + 1));
        else {
          const name = a.slice(2);
          const next = argv[i + 1];
          if (booleans.includes(name) || next === undefined || next.startsWith('--')) this.flags.set(name, true);
          else {
            this.flags.set(name, next);
            i++;
          }
        }
      } else this.positional.push(a);
    }
  }

  bool(name: string): boolean {
    return this.flags.get(name) === true || this.flags.get(name) === 'true';
  }
  str(name: string): string | undefined {
    const v = this.flags.get(name);
    return typeof v === 'string' ? v : undefined;
  }
  need(name: string): string {
    const v = this.str(name);
    if (v === undefined) throw new EngineError('BAD_REQUEST', `Missing required flag --${name}.`);
    return v;
  }
  num(name: string, dflt?: number): number | undefined {
    const v = this.str(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new EngineError('BAD_REQUEST', `--${name} must be a number (got '${v}').`);
    return n;
  }
  int(name: string, dflt?: number): number | undefined {
    const n = this.num(name, dflt);
    if (n !== undefined && !Number.isInteger(n)) throw new EngineError('BAD_REQUEST', `--${name} must be an integer (got ${n}).`);
    return n;
  }
}

// FileStore: the semantic cache's Node store, one JSON-lines log per cache directory. Appends are
// serialized; the log is compacted into a temp file that is renamed over it. One writer per directory.

import { appendFile, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../api/errors.js';
import type { CacheStore } from './store.js';

const LOG = 'entries.jsonl';

type LogLine = { op: 'set'; id: string; value: unknown } | { op: 'del'; id: string };

/**
 * Each set/delete appends one line and resolves once it is written; writes run one at a time, so
 * concurrent inserts all land. A line cut short by a crash is skipped on open, and the log is then
 * rewritten. When dead lines outnumber live entries the log is compacted (temp file + fsync + rename).
 * @example
 *   const store = await FileStore.open('/tmp/hearth-cache');
 */
export class FileStore implements CacheStore {
  readonly path: string;
  /** Lines skipped when the log was opened (unparseable or of the wrong shape). */
  readonly skippedLines: number;
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly live: Map<string, string>, // id → JSON of the value
    private lines: number,
    skipped: number,
  ) {
    this.path = join(dir, LOG);
    this.skippedLines = skipped;
  }

  static async open(dir: string): Promise<FileStore> {
    await mkdir(dir, { recursive: true });
    let text = '';
    try {
      text = await readFile(join(dir, LOG), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw storeError(dir, e);
    }
    const raw = text.split('\n').filter((l) => l.length > 0);
    let skipped = 0;
    const live = new Map<string, string>();
    for (const l of raw) {
      const line = parseLine(l);
      if (!line) skipped++;
      else if (line.op === 'set') live.set(line.id, JSON.stringify(line.value));
      else live.delete(line.id);
    }
    const store = new FileStore(dir, live, raw.length, skipped);
    // A torn last line would glue itself to the next append: rewrite before appending anything.
    if (skipped > 0 || (text.length > 0 && !text.endsWith('\n'))) await store.enqueue(() => store.compact());
    return store;
  }

  get(id: string): Promise<unknown> {
    const s = this.live.get(id);
    return Promise.resolve(s === undefined ? undefined : (JSON.parse(s) as unknown));
  }

  entries(): Promise<[string, unknown][]> {
    return Promise.resolve([...this.live].map(([id, s]) => [id, JSON.parse(s) as unknown]));
  }

  set(id: string, value: unknown): Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new EngineError('BAD_REQUEST', `FileStore.set(${id}): the value is not JSON-serializable.`, { id });
    this.live.set(id, json);
    return this.enqueue(() => this.append(`{"op":"set","id":${JSON.stringify(id)},"value":${json}}\n`));
  }

  delete(id: string): Promise<void> {
    if (!this.live.delete(id)) return Promise.resolve();
    return this.enqueue(() => this.append(`${JSON.stringify({ op: 'del', id })}\n`));
  }

  close(): Promise<void> {
    return this.queue;
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    const p = this.queue.then(op);
    this.queue = p.catch(() => undefined); // one failed write does not block the ones after it
    return p;
  }

  private async append(line: string): Promise<void> {
    try {
      await appendFile(this.path, line, 'utf8');
    } catch (e) {
      throw storeError(this.dir, e);
    }
    this.lines++;
    if (this.lines > 2 * this.live.size + 64) await this.compact();
  }

  /** Writes the live entries to a temp file and renames it over the log. */
  private async compact(): Promise<void> {
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      const fh = await open(tmp, 'w');
      try {
        let buf = '';
        for (const [id, json] of this.live) buf += `{"op":"set","id":${JSON.stringify(id)},"value":${json}}\n`;
        await fh.writeFile(buf, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      this.lines = this.live.size;
    } catch (e) {
      await rm(tmp, { force: true });
      throw storeError(this.dir, e);
    }
  }
}

function parseLine(l: string): LogLine | null {
  let v: unknown;
  try {
    v = JSON.parse(l);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'string') return null;
  if (o.op === 'set' && 'value' in o) return { op: 'set', id: o.id, value: o.value };
  if (o.op === 'del') return { op: 'del', id: o.id };
  return null;
}

function storeError(dir: string, e: unknown): EngineError {
  const err = e as NodeJS.ErrnoException;
  return new EngineError(
    'BAD_REQUEST',
    `The semantic cache directory ${dir} could not be written or read (${err.code ?? err.message}); check its permissions and free space.`,
    {
      dir,
      cause: err.code ?? err.message,
    },
  );
}

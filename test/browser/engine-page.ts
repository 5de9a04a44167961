// What the engine specs import in the page (through Vite): the worker-backed engine, EngineError,
// and an engine with a model already loaded, so each spec's page code starts from one line.

import { createEngine, type WorkerBackedEngine } from '../../src/worker/engine-client.js';
import { EngineError } from '../../src/api/errors.js';

export { createEngine, EngineError };

/** A new worker engine with the model at `url` loaded. */
export async function loadedEngine(url: string): Promise<WorkerBackedEngine> {
  const engine = await createEngine();
  await engine.load(url);
  return engine;
}

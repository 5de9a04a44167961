// Embedder: turns query texts into L2-normalized vectors for the semantic cache, plus an adapter for
// @xenova/transformers feature-extraction pipelines. A new embedder implements Embedder and gives itself an id.

import { EngineError } from '../api/errors.js';

/**
 * Maps texts to unit-length vectors whose dot product is their cosine similarity.
 * `id` names the embedder and its configuration (model, dimension, version): it is part of every
 * cache key, so vectors from two embedders are never compared.
 */
export interface Embedder {
  readonly id: string;
  readonly dim: number;
  embed(texts: readonly string[]): Promise<Float32Array[]>;
}

/** Scales `v` in place to unit L2 norm; a zero vector stays zero. Returns `v`. */
export function l2Normalize(v: Float32Array): Float32Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  if (ss > 0) {
    const inv = 1 / Math.sqrt(ss);
    for (let i = 0; i < v.length; i++) v[i] = v[i]! * inv;
  }
  return v;
}

/** The output of a transformers.js feature-extraction pipeline: a tensor of shape `dims`, row-major. */
export interface FeatureExtractionOutput {
  data: ArrayLike<number>;
  dims: readonly number[];
}

/**
 * The part of an `@xenova/transformers` `pipeline('feature-extraction', model)` that hearth calls,
 * typed structurally so hearth does not depend on the package.
 */
export type FeatureExtractionPipeline = (texts: string[], options: { pooling: 'mean'; normalize: boolean }) => Promise<FeatureExtractionOutput>;

/**
 * Adapts a transformers.js feature-extraction pipeline (mean pooling, normalized) to Embedder.
 * `id` must name the model (e.g. 'xenova:all-MiniLM-L6-v2'); the dimension is read from one probe embedding.
 * @example
 *   const embedder = await transformersEmbedder(await pipeline('feature-extraction', 'Xenova/all-MiniLM-L6-v2'), 'xenova:all-MiniLM-L6-v2');
 */
export async function transformersEmbedder(pipeline: FeatureExtractionPipeline, id: string): Promise<Embedder> {
  if (!id) throw new EngineError('BAD_REQUEST', 'transformersEmbedder needs an id that names the model (it is part of the cache key).');
  const run = async (texts: readonly string[], dim: number | null): Promise<Float32Array[]> => {
    if (texts.length === 0) return [];
    const out = await pipeline([...texts], { pooling: 'mean', normalize: true });
    const [n, d] = out.dims;
    if (out.dims.length !== 2 || n !== texts.length || d === undefined || d <= 0 || (dim !== null && d !== dim) || out.data.length !== n * d)
      throw new EngineError(
        'BAD_REQUEST',
        `The feature-extraction pipeline for ${id} returned dims [${out.dims.join(', ')}] with ${out.data.length} values for ${texts.length} texts; ` +
          `expected [${texts.length}, ${dim ?? 'dim'}] (pooling 'mean' gives one vector per text).`,
        { id, texts: texts.length, dims: out.dims.join('x'), values: out.data.length },
      );
    const vecs: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      const v = new Float32Array(d);
      for (let j = 0; j < d; j++) v[j] = out.data[i * d + j]!;
      for (const x of v)
        if (!Number.isFinite(x))
          throw new EngineError('BAD_REQUEST', `The feature-extraction pipeline for ${id} returned a non-finite value in vector ${i}.`, { id, index: i });
      // normalize: true should already give unit vectors; renormalizing makes dot product = cosine regardless.
      vecs.push(l2Normalize(v));
    }
    return vecs;
  };
  const probe = await run(['dimension probe'], null);
  const dim = probe[0]!.length;
  return { id, dim, embed: (texts) => run(texts, dim) };
}

// Token trees for speculative decoding: their shapes, and where each node sits when the target
// (or a drafter) feeds a tree in one forward pass. Node 0 is the root, the sequence's last
// accepted token, at position `start`; a node's KV goes to slot start + its index (every node
// gets its own cache row) while RoPE rotates it at start + its depth (the position it would have
// if its branch were accepted). The attention mask lets a node see the whole context before the
// root and, inside the tree, only its ancestors and itself (shaders/attention.wgsl `visible`).
// After verification the accepted path is moved to slots start + 1, start + 2, ... (kv-move.wgsl)
// and everything past it is garbage the next step overwrites.

import { EngineError } from '../api/errors.js';

/** The most nodes of one tree (the attention mask is one u32 of ancestors per node). */
export const MAX_TREE_NODES = 32;
/** The deepest tree (drafted tokens on one path). */
export const MAX_TREE_DEPTH = 8;

/** A tree's structure: parents[i] < i for i >= 1, parents[0] = -1; a node's children are contiguous, in draw order. */
export interface TreeShape {
  parents: readonly number[];
}

/** Depth of every node (root 0). */
export function depths(shape: TreeShape): number[] {
  const d: number[] = [];
  shape.parents.forEach((p, i) => d.push(i === 0 ? 0 : d[p]! + 1));
  return d;
}

/** Nodes of the full tree of `width` children per node down to `depth`, root included. */
export function fullTreeNodes(width: number, depth: number): number {
  let nodes = 1;
  for (let d = 1, level = 1; d <= depth; d++) nodes += level *= width;
  return nodes;
}

/**
 * The full tree of `width` children per node down to `depth` (width 1: a chain), breadth first.
 * BAD_REQUEST when it would exceed MAX_TREE_NODES or MAX_TREE_DEPTH.
 */
export function fullTree(width: number, depth: number): TreeShape {
  if (!(Number.isInteger(width) && width >= 1 && Number.isInteger(depth) && depth >= 1))
    throw new EngineError('BAD_REQUEST', `speculative.tree needs integer width >= 1 and depth >= 1 (got width ${width}, depth ${depth}).`, { width, depth });
  const nodes = fullTreeNodes(width, depth);
  if (depth > MAX_TREE_DEPTH || nodes > MAX_TREE_NODES)
    throw new EngineError(
      'BAD_REQUEST',
      `A speculative tree of width ${width} and depth ${depth} has ${nodes} nodes; hearth verifies at most ${MAX_TREE_NODES} nodes and depth ${MAX_TREE_DEPTH}.`,
      { width, depth, nodes, maxNodes: MAX_TREE_NODES, maxDepth: MAX_TREE_DEPTH },
    );
  const parents = [-1];
  let level = [0];
  for (let d = 1; d <= depth; d++) {
    const next: number[] = [];
    for (const p of level)
      for (let c = 0; c < width; c++) {
        next.push(parents.length);
        parents.push(p);
      }
    level = next;
  }
  return { parents };
}

/** Nodes by depth: levels[d] = the local indices at depth d (contiguous, ascending). */
export function levels(shape: TreeShape): number[][] {
  const out: number[][] = [];
  depths(shape).forEach((d, i) => (out[d] ??= []).push(i));
  return out;
}

/**
 * Per-token attention metadata of node i fed at tree position `start` (root slot): RoPE position
 * start + depth, KV slot start + i, and the visibility mask of the 32 keys ending at the slot
 * (bit b: key slot - b): the ancestors and the node itself inside the tree, everything before it.
 */
export function nodeMeta(shape: TreeShape, start: number, i: number, ds: readonly number[] = depths(shape)): { ropePos: number; slot: number; mask: number } {
  let mask = 0;
  // Keys before the root: bits i + 1 .. 31 (keys slot - b < start).
  for (let b = i + 1; b < 32; b++) mask |= 1 << b;
  for (let a = i; a >= 0; a = shape.parents[a]!) mask |= 1 << (i - a);
  return { ropePos: start + ds[i]!, slot: start + i, mask: mask >>> 0 };
}

/**
 * The trie of drafted paths under the root (shared prefixes merged), breadth first, cut to
 * `maxNodes` nodes (root included): its shape and the nodes' tokens, `root` first.
 */
export function treeFromPaths(root: number, paths: readonly (readonly number[])[], maxNodes = MAX_TREE_NODES): { shape: TreeShape; tokens: number[] } {
  interface Trie {
    token: number;
    kids: Trie[];
  }
  const top: Trie = { token: root, kids: [] };
  for (const path of paths) {
    let at = top;
    for (const t of path.slice(0, MAX_TREE_DEPTH)) {
      let next = at.kids.find((k) => k.token === t);
      if (!next) at.kids.push((next = { token: t, kids: [] }));
      at = next;
    }
  }
  const parents = [-1];
  const tokens = [root];
  const queue: [Trie, number][] = [[top, 0]];
  for (let q = 0; q < queue.length; q++) {
    const [node, idx] = queue[q]!;
    for (const kid of node.kids) {
      if (parents.length >= Math.min(maxNodes, MAX_TREE_NODES)) break;
      parents.push(idx);
      tokens.push(kid.token);
      queue.push([kid, parents.length - 1]);
    }
  }
  return { shape: { parents }, tokens };
}

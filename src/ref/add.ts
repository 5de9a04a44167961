// CPU reference of shaders/add.wgsl: the residual add Y + A, float64.
// Other elementwise binary ops get their own function beside this one.

/** y, a [M, D] → y + a. */
export function addRef(y: ArrayLike<number>, a: ArrayLike<number>): Float64Array {
  const out = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) out[i] = y[i]! + a[i]!;
  return out;
}

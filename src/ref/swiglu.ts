// CPU reference of shaders/swiglu.wgsl: silu(gate) * up elementwise, float64.
// Other gated activations (GeGLU) get their own function beside this one.

/** gate, up [M, FF] → silu(gate) * up. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const y = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    y[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
  return y;
}

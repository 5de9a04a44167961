// Small buffer helpers shared by the kernels: creation, uniforms, the per-step uniform, readback
// and dispatch-grid splitting. Everything that allocates GPU memory goes through here.

export const STORAGE = 0x0080; // GPUBufferUsage.STORAGE (the enum is not a global in every context)
export const COPY_SRC = 0x0004;
export const COPY_DST = 0x0008;
export const UNIFORM = 0x0040;
export const MAP_READ = 0x0001;

export function storageBuffer(device: GPUDevice, sizeBytes: number, label: string): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(16, align4(sizeBytes)), usage: STORAGE | COPY_SRC | COPY_DST });
}

export function storageFrom(device: GPUDevice, data: ArrayBufferView, label: string): GPUBuffer {
  const buf = storageBuffer(device, data.byteLength, label);
  device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, align4Down(data.byteLength));
  const tail = data.byteLength % 4;
  if (tail) {
    const last = new Uint8Array(4);
    last.set(new Uint8Array(data.buffer, data.byteOffset + data.byteLength - tail, tail));
    device.queue.writeBuffer(buf, align4Down(data.byteLength), last);
  }
  return buf;
}

/** A uniform buffer from 32-bit fields; f32 fields are given as {f: x}. */
export function uniformFrom(device: GPUDevice, fields: (number | { f: number })[], label: string): GPUBuffer {
  const n = Math.max(4, Math.ceil(fields.length / 4) * 4);
  const ab = new ArrayBuffer(n * 4);
  const u = new Uint32Array(ab);
  const f = new Float32Array(ab);
  fields.forEach((v, i) => {
    if (typeof v === 'number') u[i] = v >>> 0;
    else f[i] = v.f;
  });
  const buf = device.createBuffer({ label, size: ab.byteLength, usage: UNIFORM | COPY_DST });
  device.queue.writeBuffer(buf, 0, ab);
  return buf;
}

export function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
function align4Down(n: number): number {
  return Math.floor(n / 4) * 4;
}

/** The per-step uniform every kernel reads: tokens in the step, rows whose logits it computes. */
export class StepUniform {
  readonly buffer: GPUBuffer;
  private readonly data = new Uint32Array(4);
  constructor(private readonly device: GPUDevice) {
    this.buffer = device.createBuffer({ label: 'step', size: 16, usage: UNIFORM | COPY_DST });
  }
  write(numTokens: number, numOut = 1): void {
    this.data[0] = numTokens;
    this.data[1] = numOut;
    this.device.queue.writeBuffer(this.buffer, 0, this.data);
  }
}

const dummies = new WeakMap<GPUDevice, GPUBuffer>();
/** A 16-byte storage buffer for a binding an entry point declares but a configuration never reads. */
export function dummyStorage(device: GPUDevice): GPUBuffer {
  let b = dummies.get(device);
  if (!b) {
    b = storageBuffer(device, 16, 'unused');
    dummies.set(device, b);
  }
  return b;
}

/** Split a 1-D workgroup count over x and y to stay under the per-dimension limit. */
export function grid(workgroups: number, maxPerDim = 65535): [number, number] {
  if (workgroups <= maxPerDim) return [Math.max(1, workgroups), 1];
  const y = Math.ceil(workgroups / maxPerDim);
  return [Math.ceil(workgroups / y), y];
}

// EngineError: the one error type hearth throws, with a machine-readable code and the numbers.
// To add a code, extend ErrorCode and document what the user should do in the message.

export type ErrorCode =
  | 'WEBGPU_UNAVAILABLE'
  | 'BAD_MODEL_FILE'
  | 'UNSUPPORTED_TENSOR_TYPE'
  | 'UNSUPPORTED_ARCHITECTURE'
  | 'MODEL_TOO_LARGE'
  | 'CONTEXT_OVERFLOW'
  | 'OUT_OF_KV_BLOCKS'
  | 'DEVICE_LOST'
  | 'GPU_ERROR'
  | 'ABORTED'
  | 'STORAGE_QUOTA_EXCEEDED'
  | 'BAD_REQUEST'
  | 'NOT_LOADED';

export type ErrorDetails = Record<string, string | number | boolean | null | undefined>;

/** An error from the engine. `code` is stable; `details` carries the numbers behind the message. */
export class EngineError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
    this.details = details;
  }

  /** Plain-data form for crossing a worker boundary. */
  toJSON(): { name: string; code: ErrorCode; message: string; details: ErrorDetails } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }

  static fromJSON(v: { code: ErrorCode; message: string; details?: ErrorDetails }): EngineError {
    return new EngineError(v.code, v.message, v.details ?? {});
  }
}

/** For programmer errors only (broken invariants), never for bad input. */
export function assert(cond: unknown, msg = 'assertion failed'): asserts cond {
  if (!cond) throw new Error(`hearth internal error: ${msg}`);
}

// Node-only entry point (`hearth/node`): Dawn device acquisition and file-handle byte sources.
// Browser code imports `hearth` only.

export { acquireNodeDevice, SWIFTSHADER_ICD, type NodeDeviceOptions } from './gpu/device-node.js';
export { fileSource } from './model/file-source-node.js';
export { FileStore } from './cache/store-file.js';

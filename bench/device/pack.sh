#!/bin/sh
# Packs what bench/device/run.sh needs on a lent GPU machine that has no Node and no network:
#   .dev/      Node (xz), the node_modules the GPU bench imports (tsx, webgpu's linux-x64
#              dawn.node, node-llama-cpp with its Vulkan build and its CUDA build minus
#              libggml-cuda.so), the .debs of the Vulkan loader and libglvnd
#   .dev-cu1/, .dev-cu2/  libggml-cuda.so (159 MB, 124 MB in xz) in two halves: one call carries
#              at most 64 MiB, so the CUDA library travels in two further calls to the same warm machine.
# All three folders are ignored through .git/info/exclude. Run from the repository root.
set -eu
cd "$(dirname "$0")/../.."
for d in /.dev/ /.dev-cu1/ /.dev-cu2/; do
  grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude
done
rm -rf .dev .dev-cu1 .dev-cu2
mkdir -p .dev .dev-cu1 .dev-cu2
xz -T0 -6 -c "$(command -v node)" >.dev/node.xz

# The packages the GPU bench loads, with their dependencies (npm installs them flat).
node -e '
const fs = require("fs");
const seen = new Set();
const queue = ["node-llama-cpp", "tsx", "webgpu", "comlink", "@huggingface/jinja", "idb-keyval", "@node-llama-cpp/linux-x64-vulkan", "@node-llama-cpp/linux-x64-cuda", "@esbuild/linux-x64"];
while (queue.length) {
  const n = queue.pop();
  if (seen.has(n) || !fs.existsSync(`node_modules/${n}/package.json`)) continue;
  seen.add(n);
  const j = JSON.parse(fs.readFileSync(`node_modules/${n}/package.json`, "utf8"));
  queue.push(...Object.keys(j.dependencies || {}));
}
fs.writeFileSync(".dev/modules.txt", [...seen].map((n) => `node_modules/${n}`).join("\n") + "\n");
'
# (GNU tar applies an --exclude only to the names after it.)
XZ_OPT=-T0 tar -cJf .dev/modules.tar.xz \
  --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='node_modules/node-llama-cpp/llama/gitRelease.bundle' \
  --exclude='node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so' \
  -T .dev/modules.txt node_modules/.bin/tsx
# The Vulkan loader and the GL vendor-neutral libraries: NVIDIA's Vulkan ICD is libGLX_nvidia.so.0,
# which does not load without libglvnd (the loader then reports VK_ERROR_INCOMPATIBLE_DRIVER).
(cd .dev && apt-get download libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2 >/dev/null 2>&1)
ls .dev/libvulkan1_*.deb .dev/libglvnd0_*.deb >/dev/null

xz -T0 -6 -c node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so >.dev/cuda.xz
half=$(( ($(stat -c %s .dev/cuda.xz) + 1) / 2 ))
split -b "$half" -d -a 1 .dev/cuda.xz .dev/cuda.xz.
mv .dev/cuda.xz.0 .dev-cu1/ && mv .dev/cuda.xz.1 .dev-cu2/ && rm .dev/cuda.xz
du -sh .dev .dev-cu1 .dev-cu2

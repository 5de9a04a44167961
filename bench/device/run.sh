#!/bin/bash
# Runs on a lent GPU machine (the device tool), from the repository root, after bench/device/pack.sh
# packed .dev/ here. One stage per call, each writing into $OUT:
#   main   unpack Node and node_modules, check that Dawn finds the NVIDIA Vulkan driver, write the
#          benchmark models (small and large shapes), then bench/gpu.ts beside llama.cpp's Vulkan
#          build, the robustness cost, speculative decoding and serving on the large model
#   repeat setup, the large models, then bench/gpu.ts on them twice (run-to-run spread)
#   cu1    keep the first half of libggml-cuda.so (carried in .dev-cu1) for the next call
#   cuda   join the second half, then llama.cpp's CUDA build on the same files
# Every stage after main needs the same warm machine: it says so and stops if main's state is gone.
# HEARTH_GIT names the commit (the copy has no .git).
set -u
stage=${1:-main}
H=/tmp/hearth
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PATH=$H/bin:$PATH
log() { echo "[$(date +%T)] $*"; }
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  if [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
done
# The CUDA runtime and cuBLAS of the image's Python packages (llama.cpp's CUDA build wants the .so.13s).
cudalibs=$(find /opt /usr/local -name 'libcublas.so.13*' 2>/dev/null | head -1)
cudart=$(find /opt /usr/local -name 'libcudart.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH=${cudalibs:+$(dirname "$cudalibs"):}${cudart:+$(dirname "$cudart"):}${LD_LIBRARY_PATH:-}
CUDA_LIB=node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so

setup() {
  log "setup"
  mkdir -p $H/bin
  xz -dc .dev/node.xz >$H/bin/node && chmod +x $H/bin/node
  tar -xJf .dev/modules.tar.xz
  for deb in .dev/*.deb; do dpkg -x "$deb" /; done
  ldconfig
}

case $stage in
repeat)
  setup
  node --import tsx bench/make-models.ts --shape large --types f32,q8_0,q4_0
  for k in a b; do
    log "gpu large ($k)"
    timeout 100 node --import tsx bench/gpu.ts --shape large --types f32,q8_0,q4_0 --llama vulkan --json $OUT/gpu-large-$k.json
  done
  log "done"
  ;;
main)
  setup
  node -v
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset} LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  log "dawn adapter check"
  timeout 60 node --input-type=module -e "
    const { create } = await import('webgpu');
    const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
    if (!a) { console.log('NO ADAPTER'); process.exit(2); }
    console.log('adapter:', a.info.vendor, a.info.architecture, a.info.device, a.info.description, 'fallback', a.info.isFallbackAdapter);
    console.log('features:', [...a.features].join(' '));
    process.exit(/nvidia/i.test(a.info.vendor + a.info.description) ? 0 : 3);
  " || { log "Dawn did not find the NVIDIA GPU; stopping"; exit 3; }

  log "models"
  node --import tsx bench/make-models.ts --shape large --types q4_k >/tmp/gen-q4k.log 2>&1 &
  q4k=$!
  node --import tsx bench/make-models.ts --shape small &
  small=$!
  node --import tsx bench/make-models.ts --shape large --types f32,q8_0,q4_0 &
  large=$!
  wait $small $large
  ls -la bench/out

  log "gpu small"
  timeout 150 node --import tsx bench/gpu.ts --shape small --llama vulkan --json $OUT/gpu-small.json
  log "gpu large"
  timeout 200 node --import tsx bench/gpu.ts --shape large --types f32,q8_0,q4_0 --llama vulkan --json $OUT/gpu-large.json
  log "robustness on (a web page's setting), large q4_0"
  timeout 60 node --import tsx bench/gpu.ts --shape large --types q4_0 --llama none --robust --json $OUT/gpu-robust.json
  log "serving, large q4_0"
  timeout 120 node --import tsx bench/serving.ts --model bench/out/hearth-bench-v1-large-q4_0.gguf --json $OUT/serving.json 2>&1 | tail -25
  # Last, as the longest: its rows go to spec.log as they finish, the JSON only at the end.
  log "speculative, large f32 target, large q4_0 draft"
  timeout ${SPEC_TIMEOUT:-200} node --import tsx bench/speculative.ts --target bench/out/hearth-bench-v1-large-f32.gguf \
    --draft bench/out/hearth-bench-v1-large-q4_0.gguf --rounds 3 --json $OUT/spec.json >/tmp/spec.md 2>$OUT/spec.log
  tail -3 $OUT/spec.log
  # Last: writing the large Q4_K file (JavaScript quantization of 361 M weights) takes ~2.5 min,
  # which the steps above overlap.
  log "large q4_k"
  if timeout 60 tail --pid=$q4k -f /dev/null; then
    timeout 60 node --import tsx bench/gpu.ts --shape large --types q4_k --llama vulkan --json $OUT/gpu-large-q4k.json
  fi
  log "done"
  ;;
cu1)
  [ -x $H/bin/node ] || { log "main's state is gone (a fresh machine)"; exit 4; }
  mkdir -p $H/cu && cp .dev-cu1/cuda.xz.0 $H/cu/ && ls -la $H/cu && log "kept"
  ;;
cuda)
  [ -x $H/bin/node ] && [ -f $H/cu/cuda.xz.0 ] || { log "main's or cu1's state is gone (a fresh machine)"; exit 4; }
  cat $H/cu/cuda.xz.0 .dev-cu2/cuda.xz.1 | xz -dc >$CUDA_LIB || exit 5
  ls -la $CUDA_LIB
  log "llama.cpp cuda small"
  timeout 120 node --import tsx bench/gpu.ts --shape small --no-hearth --llama cuda --json $OUT/gpu-cuda-small.json
  log "llama.cpp cuda large"
  timeout 150 node --import tsx bench/gpu.ts --shape large --types f32,q8_0,q4_0,q4_k --no-hearth --llama cuda --json $OUT/gpu-cuda-large.json
  log "done"
  ;;
esac

#!/usr/bin/env bash
# Prepare .whl/ (git-ignored) with the Python 3.12 wheels a lent GPU machine lacks, so that
# `make gpu-check` can install them there with no registry. Its image has torch, torchvision,
# transformers, accelerate, peft, numpy, scipy, pandas, matplotlib, numba, tqdm and pytest
# (tool library: device/KINDS.md); it lacks diffusers, facenet-pytorch and ai-edge-litert.
#
#   bash scripts/gpu_wheels.sh                 # base: diffusers + facenet-pytorch (8 MB)
#   bash scripts/gpu_wheels.sh litert          # base + ai-edge-litert (21 MB: landmark model)
#   bash scripts/gpu_wheels.sh mamba           # base + the mamba-ssm wheel built there (40 MB)
#
# What travels is capped at 64 MiB per call: check `du -sh .whl` before carrying it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -f .whl/*.whl
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
pin() { grep -i "^$1==" requirements-lock.txt | head -1; }
BASE=(diffusers facenet-pytorch)
case "${1:-}" in litert) BASE+=(ai-edge-litert) ;; esac
for pkg in "${BASE[@]}"; do
  spec=$(pin "$pkg"); spec=${spec:-$pkg}
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLAT[@]}" -d .whl "$spec" || echo "could not fetch $spec" >&2
done
if [ "${1:-}" = "mamba" ]; then
  cp ../shared/gpu/mamba_ssm-*.whl .whl/
fi
du -sh .whl

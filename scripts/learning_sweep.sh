#!/usr/bin/env bash
# Measure every test marked `learning` over seeds 0-4 and ATEN_CPU_CAPABILITY default/avx2/avx512:
# each prints a "LEARNING <name> <statistic> <value>" line; thresholds are set from these ranges.
#   bash scripts/learning_sweep.sh [pytest args...]   -> runs/learning_sweep.txt
set -uo pipefail
cd "$(dirname "$0")/.."
out=runs/learning_sweep.txt
mkdir -p runs && : > "$out"
for cap in default avx2 avx512; do
  for seed in 0 1 2 3 4; do
    ATEN_CPU_CAPABILITY=$cap FACELAB_TEST_SEED=$seed .venv/bin/python -m pytest -q -s -m learning -p no:cacheprovider "$@" tests \
      2>&1 | grep -oE "LEARNING .*|[0-9]+ (passed|failed).*" | sed "s/^/$cap seed$seed /" | tee -a "$out"
  done
done

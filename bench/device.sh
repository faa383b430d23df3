#!/usr/bin/env bash
# Every speed figure from one GPU run (issue 27, part 2), as one prepared command: set up, run each benchmark of
# bench/device_benches.py under its own time cap, write bench/results/<date>-<gpu>.json and .md (and the same
# files plus the log under $OUT when it is set). The whole run ends within DEADLINE seconds (default 470 s)
# of its start, set-up included; a benchmark that fails or runs past its cap is recorded as such.
#
#   bash bench/device.sh                  # on the GPU machine; see docs/bench.md for the device tool's call
#   bash bench/device.sh --smoke          # the same code on a CPU, tiny models (also: QUICK=1)
#   bash bench/device.sh --only codec semantic
#
# Python: $PYTHON, else the project's .venv (make setup), else the image's python3 (the lent GPU machine's holds
# torch with CUDA). Wheels in bench/build/wheels (bash bench/pack_wheels.sh, here, before the call; carry
# bench/build) are installed into a scratch folder for the packages that Python lacks; nothing is fetched.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
DEADLINE=${DEADLINE:-470}

SMOKE=${QUICK:-0}
ARGS=()
for a in "$@"; do
  case $a in
    --smoke | --quick) SMOKE=1 ;;
    *) ARGS+=("$a") ;;
  esac
done
if [ "$SMOKE" = 1 ]; then
  ARGS+=(--quick --device "${DEVICE:-cpu}")
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tiny models: one thread is faster and steadier
else
  ARGS+=(--device "${DEVICE:-auto}")
fi

log() { echo "[device.sh $((SECONDS - START))s] $*"; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x .venv/bin/python ]; then echo .venv/bin/python
  else command -v python3
  fi
}
PY=$(pick_python)
log "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1))"

# wheels for what this Python lacks (the GPU image has torch, transformers, numpy, scipy, numba, ... but not
# openai-whisper, vector-quantize-pytorch, soundfile, librosa, s3tokenizer, encodec)
SITE=${BENCH_SITE:-${TMPDIR:-/tmp}/audiotok-bench-site}
missing_wheels() {
  "$PY" - bench/build/wheels/*.whl <<'EOF'
import re, sys
from importlib.metadata import PackageNotFoundError, version
for path in sys.argv[1:]:
    dist = re.sub(r"[-_.]+", "-", path.rsplit("/", 1)[-1].split("-")[0]).lower()
    try:
        version(dist)
    except PackageNotFoundError:
        print(path)
EOF
}
if compgen -G "bench/build/wheels/*.whl" >/dev/null; then
  mapfile -t WHEELS < <(missing_wheels)
  if [ "${#WHEELS[@]}" -gt 0 ]; then
    log "installing ${#WHEELS[@]} carried wheels into $SITE"
    mkdir -p "$SITE"
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "${WHEELS[@]}" 2>&1 | tail -3; then
      for w in "${WHEELS[@]}"; do  # one at a time: a wheel for another Python must not stop the rest
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$w" \
          >/dev/null 2>&1 || log "could not install $(basename "$w")"
      done
    fi
  fi
else
  log "no wheels in bench/build/wheels (bash bench/pack_wheels.sh makes them): using $PY's packages as they are"
fi
export PYTHONPATH="$PWD${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-${TMPDIR:-/tmp}/audiotok-numba}
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")' \
  || log "torch does not import: every benchmark will be recorded as failed"

LEFT=$((DEADLINE - (SECONDS - START)))
LOG=${TMPDIR:-/tmp}/audiotok-device-bench.log
log "running the benchmarks (budget $((LEFT - 15)) s, hard stop at $LEFT s)"
timeout -k 5 "$LEFT" "$PY" bench/device.py --budget "$((LEFT - 15))" "${ARGS[@]}" 2>&1 | tee "$LOG"
RC=${PIPESTATUS[0]}
if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
  log "stopped at the deadline: the results files hold what had finished"
fi
if [ -n "${OUT:-}" ]; then cp "$LOG" "$OUT/device-bench.log"; fi
log "done (exit $RC)"
exit "$RC"

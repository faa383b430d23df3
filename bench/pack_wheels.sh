#!/usr/bin/env bash
# Wheels for the packages bench/device.sh needs that the lent GPU machine's image lacks (it reaches no package
# registry). Run HERE, before the device call; the wheels land in bench/build/wheels (ignored by git, ~15 MB) and
# travel when the call names `bench/build` in `carry`. Versions: requirements.lock; Python 3.12 / x86-64 builds,
# as the device image's python3 is 3.12 (pure-Python sdists are built into py3-none-any wheels).
#
#   bash bench/pack_wheels.sh            # then: run(command="bash bench/device.sh", carry=["bench/build"])
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=bench/build/wheels
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
# the project's imports (vector-quantize-pytorch, openai-whisper, soundfile), the peers (s3tokenizer, encodec,
# librosa) and what they import that the image lacks (see /work/.library/device/KINDS.md's package list)
PACKAGES=(
  vector-quantize-pytorch einx frozendict loguru torch-einops-utils
  openai-whisper more-itertools
  soundfile cffi pycparser
  s3tokenizer encodec
  librosa soxr audioread decorator pooch platformdirs
)
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64)

pin() {  # NAME -> NAME==VERSION from requirements.lock (NAME alone if it is not pinned there)
  local spec
  spec=$(tr ' ' '\n' <requirements.lock | grep -i -E "^$1==" | head -1 || true)
  echo "${spec:-$1}"
}

mkdir -p "$DEST"
for name in "${PACKAGES[@]}"; do
  spec=$(pin "$name")
  if "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLATFORMS[@]}" -d "$DEST" "$spec" 2>/dev/null; then
    echo "wheel: $spec"
  else  # an sdist only: build a (pure-Python) wheel here
    "$PY" -m pip wheel -q --no-deps -w "$DEST" "$spec"
    echo "built: $spec"
  fi
done
du -sh "$DEST"

# what a device call sends: tracked and untracked-not-ignored files, plus the carried bench/build (limit 64 MiB)
travel=$( { git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null; \
  find bench/build -type f -printf '%s\n'; } | awk '{s += $1} END {print s}')
echo "a device call with carry=[\"bench/build\"] would send $((travel / 1048576)) MiB (limit 64 MiB)"
if [ "$travel" -gt $((64 * 1048576)) ]; then
  echo "over the limit: see docs/bench.md ('The 64 MiB limit') for what the benchmark can do without" >&2
fi

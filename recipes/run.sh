#!/usr/bin/env bash
# Launch a recipe with torchrun on this node's GPUs (one CPU process when there is none):
#   bash recipes/run.sh TASK CONFIG.yaml [key=value ...]
# TASK: codec | whisper | semantic | speaker | asr_s2lora (its adapt.py) | tts/train_lm | tts/train_flow |
#       tts/train_vocoder — any recipes/TASK/train.py or recipes/TASK.py.
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host bash recipes/run.sh codec CONFIG.yaml
# DRY_RUN=1 prints the command instead of running it.
set -euo pipefail
task=${1:?usage: recipes/run.sh TASK CONFIG.yaml [key=value ...]}
config=$(realpath "${2:?usage: recipes/run.sh TASK CONFIG.yaml [key=value ...]}")
shift 2
cd "$(dirname "$0")/.."
script=""
for candidate in "recipes/$task/train.py" "recipes/$task/adapt.py" "recipes/$task.py"; do
    [ -f "$candidate" ] && { script=$candidate; break; }
done
[ -n "$script" ] || { echo "no recipe for task '$task' (recipes/$task/train.py or recipes/$task.py)" >&2; exit 2; }
gpus=$(.venv/bin/python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
nproc=${NPROC:-$(( gpus > 0 ? gpus : 1 ))}
cmd=(.venv/bin/torchrun --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}"
     --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}"
     --nproc_per_node "$nproc" "$script" --config "$config" "$@")
if [ -n "${DRY_RUN:-}" ]; then echo "${cmd[@]}"; else exec "${cmd[@]}"; fi

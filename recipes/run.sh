#!/usr/bin/env bash
# Launch a recipe with torchrun on this node's GPUs (one CPU process when there is none):
#   bash recipes/run.sh codec|whisper|semantic CONFIG.yaml [key=value ...]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host bash recipes/run.sh codec CONFIG.yaml
set -euo pipefail
task=${1:?usage: recipes/run.sh TASK CONFIG.yaml [key=value ...]}
config=$(realpath "${2:?usage: recipes/run.sh TASK CONFIG.yaml [key=value ...]}")
shift 2
cd "$(dirname "$0")/.."
[ -f "recipes/$task/train.py" ] || { echo "no recipe recipes/$task/train.py" >&2; exit 2; }
gpus=$(.venv/bin/python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
nproc=${NPROC:-$(( gpus > 0 ? gpus : 1 ))}
exec .venv/bin/torchrun --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
    --nproc_per_node "$nproc" "recipes/$task/train.py" --config "$config" "$@"

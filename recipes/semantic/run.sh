#!/usr/bin/env bash
# Launch recipes/semantic/train.py with torchrun on this node's GPUs (or one CPU process when there is none).
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host bash recipes/semantic/run.sh CONFIG [key=value ...]
set -euo pipefail
config=$(realpath "${1:?usage: recipes/semantic/run.sh CONFIG.yaml [key=value ...]}"); shift
cd "$(dirname "$0")/../.."
gpus=$(.venv/bin/python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
nproc=${NPROC:-$(( gpus > 0 ? gpus : 1 ))}
exec .venv/bin/torchrun --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
    --nproc_per_node "$nproc" recipes/semantic/train.py --config "$config" "$@"

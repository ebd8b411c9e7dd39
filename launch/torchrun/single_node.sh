#!/usr/bin/env bash
# One machine, NPROC training processes under torchrun (standalone rendezvous on a free local port).
#
#   launch/torchrun/single_node.sh CONFIG [key=value ...] [largegraph train options ...]
#   NPROC=4 launch/torchrun/single_node.sh configs/node_sage_synth.yaml --run-dir runs/sage-x4
#
# Environment:
#   NPROC         processes on this machine (default: one per visible GPU, else 2)
#   MAX_RESTARTS  times torchrun restarts the whole worker group after a failure (default 0);
#                 each restart resumes from the run directory's newest checkpoint (--resume auto)
#   PYTHON      the Python with largegraph installed (default: python on PATH, e.g. .venv/bin/python);
#                torchrun runs through largegraph.launcher, which reports failures in one line
# Everything after CONFIG goes to `largegraph train` unchanged (overrides, --run-dir, --device ...).
set -euo pipefail

# shellcheck source=launch/torchrun/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # sets CONFIG and shifts it off

MAX_RESTARTS=${MAX_RESTARTS:-0}

# torchrun itself (torch.distributed.run), with one-line failure reports.
exec "$PYTHON" -m largegraph.launcher \
    --standalone \
    --nnodes 1 \
    --nproc-per-node "$NPROC" \
    --max-restarts "$MAX_RESTARTS" \
    -m largegraph train "$CONFIG" --resume auto "$@"

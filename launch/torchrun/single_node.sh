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

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    # the comment block above is the help text
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
CONFIG=$1
shift

if [[ -z ${NPROC:-} ]]; then
    # grep -c exits 1 on zero matches: no GPU falls through to 2 CPU workers (gloo).
    if command -v nvidia-smi >/dev/null 2>&1 && NPROC=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); then
        :
    else
        NPROC=2
    fi
fi
MAX_RESTARTS=${MAX_RESTARTS:-0}
PYTHON=${PYTHON:-python}
# torchrun would give each process one thread; share the cores instead (sampling stays repeatable).
cores=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / NPROC > 0 ? cores / NPROC : 1 ))}

# torchrun itself (torch.distributed.run), with one-line failure reports.
exec "$PYTHON" -m largegraph.launcher \
    --standalone \
    --nnodes 1 \
    --nproc-per-node "$NPROC" \
    --max-restarts "$MAX_RESTARTS" \
    -m largegraph train "$CONFIG" --resume auto "$@"

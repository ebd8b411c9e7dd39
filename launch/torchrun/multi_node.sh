#!/usr/bin/env bash
# Several machines under torchrun with c10d rendezvous: run this same command on every node.
#
#   NNODES=2 NPROC=8 RDZV_ENDPOINT=node0:29500 RDZV_ID=products-1 \
#       launch/torchrun/multi_node.sh configs/ogbn_products_sage.yaml \
#       --run-dir /shared/runs/products data.root=/shared/data
#
# Environment:
#   RDZV_ENDPOINT  host:port of the c10d rendezvous store, reachable from every node (required; the
#                  node whose hostname it names hosts the store, any node will do)
#   RDZV_ID        job id, the same on every node and new for every job (required); also names the
#                  default run directory (runs/<job name>-<RDZV_ID>) when --run-dir is not given
#   NNODES         number of nodes, or MIN:MAX for an elastic job (default 2)
#   NPROC          processes per node (default: one per visible GPU, else 2)
#   MAX_RESTARTS   worker-group restarts after a failure or a membership change (default 3);
#                  each restart resumes from the newest checkpoint (--resume auto)
#   RDZV_TIMEOUT   seconds to wait for all nodes to join before failing (default 600)
#   PYTHON       the Python with largegraph installed (default: python on PATH, e.g. .venv/bin/python);
#                 torchrun runs through largegraph.launcher, which reports failures in one line
# Pass --run-dir on a filesystem every node shares: a restart on any node must find the checkpoints.
set -euo pipefail

# shellcheck source=launch/torchrun/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # sets CONFIG and shifts it off

: "${RDZV_ENDPOINT:?set RDZV_ENDPOINT=host:port of a node every node can reach, e.g. node0:29500}"
: "${RDZV_ID:?set RDZV_ID to one id shared by every node of this job, e.g. the scheduler job id}"
NNODES=${NNODES:-2}
MAX_RESTARTS=${MAX_RESTARTS:-3}
RDZV_TIMEOUT=${RDZV_TIMEOUT:-600}

# torchrun itself (torch.distributed.run), with one-line failure reports.
exec "$PYTHON" -m largegraph.launcher \
    --nnodes "$NNODES" \
    --nproc-per-node "$NPROC" \
    --rdzv-backend c10d \
    --rdzv-endpoint "$RDZV_ENDPOINT" \
    --rdzv-id "$RDZV_ID" \
    --rdzv-conf "join_timeout=$RDZV_TIMEOUT" \
    --max-restarts "$MAX_RESTARTS" \
    -m largegraph train "$CONFIG" --resume auto "$@"

#!/usr/bin/env bash
# What the torchrun launchers share, sourced by them (not run): the help text, CONFIG (their first
# argument, shifted off), NPROC, PYTHON and the thread count. The help text is the comment block
# at the top of the script that sources this.
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
# shellcheck disable=SC2034  # read by the script that sources this file
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
# shellcheck disable=SC2034  # read by the script that sources this file
PYTHON=${PYTHON:-python}
# torchrun would give each process one thread; share the cores instead (sampling stays repeatable).
cores=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / NPROC > 0 ? cores / NPROC : 1 ))}

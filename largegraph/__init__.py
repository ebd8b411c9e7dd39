"""largegraph: sampled GNN training on graphs too large for full-batch training."""
import os
import sys

# DGL picks its backend at import time and prints a warning when none is set; we only support PyTorch.
os.environ.setdefault("DGLBACKEND", "pytorch")

# OGB (imported by DGL itself) starts a non-daemon thread on import that asks PyPI whether OGB is
# outdated. Without internet it hangs on until a timeout, and it is still running when DataLoader
# workers fork. OGB skips the check when the `outdated` package cannot be imported.
sys.modules.setdefault("outdated", None)

__version__ = "0.1.0"

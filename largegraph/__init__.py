"""largegraph: sampled GNN training on graphs too large for full-batch training."""
import os

# DGL picks its backend at import time and prints a warning when none is set; we only support PyTorch.
os.environ.setdefault("DGLBACKEND", "pytorch")

__version__ = "0.1.0"

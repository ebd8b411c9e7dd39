"""Training components and the loop: the Trainer, checkpoints, run directory, metrics."""

"""Where a job's data, loaders and task come from: this process (local) or DGL's engine (distdgl)."""

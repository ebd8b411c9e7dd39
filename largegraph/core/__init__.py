"""Runtime utilities every layer may use: errors, files, RNG, signals, memory, devices."""

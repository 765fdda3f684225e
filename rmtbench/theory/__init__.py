"""Random-matrix-theory predictions: kernels, deterministic equivalents and limiting laws."""

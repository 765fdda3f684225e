"""rmtbench: random-matrix-theory predictions for random neural networks, beside their simulation."""
__version__ = "0.1.0"

"""adabert-bench: AdaBERT (Chen et al., IJCAI 2020) reproduced as a benchmark suite.

Each pipeline stage is a function in this package and a ``python -m adabert <stage>`` command.
"""

__version__ = "0.1.0"

"""tfdfc: data-free quantization and pruning of Keras classifiers (Zhu et al., arXiv 2010.07334)."""

__version__ = "0.1.0"

"""mipipe: mutual-information estimation and its use in deep learning."""

__version__ = "0.1.0"

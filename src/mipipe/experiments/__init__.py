"""Moved to :mod:`mipipe.synthetic.experiments`; this name stays importable.

``mipipe.experiments`` is the same module object as ``mipipe.synthetic.experiments`` (so setting an
attribute on one sets it on the other).
"""

import sys
from importlib import import_module

sys.modules[__name__] = import_module("mipipe.synthetic.experiments")

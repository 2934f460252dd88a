"""Moved to :mod:`mipipe.synthetic.plotting`; this name stays importable.

``mipipe.plotting`` is the same module object as ``mipipe.synthetic.plotting`` (so setting an
attribute on one sets it on the other).
"""

import sys
from importlib import import_module

sys.modules[__name__] = import_module("mipipe.synthetic.plotting")

"""Moved to :mod:`mipipe.synthetic.families`; this name stays importable.

``mipipe.distributions`` is the same module object as ``mipipe.synthetic.families`` (so setting an
attribute on one sets it on the other).
"""

import sys
from importlib import import_module

sys.modules[__name__] = import_module("mipipe.synthetic.families")

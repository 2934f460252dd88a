"""The benchmark tasks of Czyż et al. (2023), by bmi's ids: ``from mipipe.tasks import get_task, TASKS``.

The same module object as :mod:`mipipe.synthetic.tasks` (the code lives there).
"""

import sys
from importlib import import_module

sys.modules[__name__] = import_module("mipipe.synthetic.tasks")

"""mipipe: mutual-information estimation and its use in deep learning."""

import importlib
import importlib.abc
import importlib.machinery
import sys

__version__ = "0.1.0"

# Modules that moved into mipipe.inference (issue 11): the old names stay importable and
# are the *same* module objects as the new ones (no second copy, isinstance keeps working).
MOVED = {
    "mipipe.data": "mipipe.inference.data",
    "mipipe.data_meta": "mipipe.inference.data",
    "mipipe.dataset_inference": "mipipe.inference",
    "mipipe.ssl": "mipipe.inference",
    "mipipe.ssl.augment": "mipipe.inference.augment",
    "mipipe.ssl.checkpoints": "mipipe.inference.checkpoints",
    "mipipe.ssl.encoders": "mipipe.inference.encoders",
    "mipipe.ssl.losses": "mipipe.inference.losses",
    "mipipe.ssl.mi": "mipipe.inference.mi",
    "mipipe.ssl.stages": "mipipe.inference.stages",
    "mipipe.ssl.tables": "mipipe.inference.tables",
    "mipipe.ssl.train": "mipipe.inference.training",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import hook: ``import mipipe.ssl.train`` returns :mod:`mipipe.inference.training`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        """The target module is already executed."""


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    # first: a path finder would otherwise load e.g. mipipe/inference/stages.py a second
    # time as "mipipe.ssl.stages" once mipipe.ssl resolves to the inference package
    sys.meta_path.insert(0, _MovedModules())

"""Mutual-information and entropy estimators. All return floats in nats (the neural ones a
:class:`NeuralResult` whose ``estimate`` is in nats).

The nearest-neighbour estimators (kNN, KSG), the Gaussian (CCA) one and the sliced ones need
numpy, scipy and numba only. The neural
estimators and bounds import PyTorch, so they are loaded on first use: a job that runs KSG
does not pay for importing torch.
"""

from importlib import import_module

from .gaussian import cca_mi
from .knn import knn_entropy, knn_mi, log_unit_ball_volume
from .ksg import ksg_mi
from .sliced import (
    gaussian_max_sliced_mi,
    gaussian_sliced_mi,
    ksliced_mi,
    max_sliced_mi,
    slice_frames,
    sliced_mi,
)

_LAZY = {
    "dv_bound": ".bounds",
    "infonce_bound": ".bounds",
    "nwj_bound": ".bounds",
    "LatentResult": ".latent",
    "NeuralResult": ".neural",
    "club_mi": ".club",
    "latent_mi": ".latent",
    "TrainingDiverged": ".neural",
    "knn_mi_permutation_null": ".permutation",
    "infonce_mi": ".neural",
    "mine_mi": ".neural",
    "nwj_mi": ".neural",
    "smile_mi": ".neural",
    "smile_bound": ".bounds",
}

__all__ = [
    "LatentResult",
    "NeuralResult",
    "TrainingDiverged",
    "cca_mi",
    "club_mi",
    "dv_bound",
    "gaussian_max_sliced_mi",
    "gaussian_sliced_mi",
    "infonce_bound",
    "infonce_mi",
    "knn_entropy",
    "knn_mi",
    "knn_mi_permutation_null",
    "ksg_mi",
    "ksliced_mi",
    "latent_mi",
    "log_unit_ball_volume",
    "max_sliced_mi",
    "mine_mi",
    "nwj_bound",
    "nwj_mi",
    "slice_frames",
    "sliced_mi",
    "smile_bound",
    "smile_mi",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

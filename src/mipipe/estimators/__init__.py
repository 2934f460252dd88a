"""Mutual-information and entropy estimators. All return floats in nats."""

from .bounds import dv_bound, infonce_bound, nwj_bound
from .knn import knn_entropy, knn_mi, log_unit_ball_volume
from .ksg import ksg_mi
from .neural import NeuralResult, infonce_mi, mine_mi, nwj_mi

__all__ = [
    "NeuralResult",
    "dv_bound",
    "infonce_bound",
    "infonce_mi",
    "knn_entropy",
    "knn_mi",
    "ksg_mi",
    "log_unit_ball_volume",
    "mine_mi",
    "nwj_bound",
    "nwj_mi",
]

"""Mutual-information and entropy estimators. All return floats in nats."""

from .knn import knn_entropy, knn_mi, log_unit_ball_volume
from .ksg import ksg_mi

__all__ = ["knn_entropy", "knn_mi", "ksg_mi", "log_unit_ball_volume"]

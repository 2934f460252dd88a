"""Dataset inference for self-supervised encoders (thesis section 5; Dziedzic et al. 2022):
was a suspect encoder stolen from a victim?

One module per step of the stage (rules/inference.smk):

* :mod:`~mipipe.inference.data` -- the image data sets (digits, CIFAR10, SVHN, STL10):
  names, splits and channels (torch-free), loaders with md5 checks;
* :mod:`~mipipe.inference.augment` -- SimCLR views with torchvision.transforms.v2;
* :mod:`~mipipe.inference.encoders` -- CIFAR-style ResNet18/34 (512-d), a small CNN, the
  projection head;
* :mod:`~mipipe.inference.losses` -- NT-Xent and the stealing InfoNCE;
* :mod:`~mipipe.inference.training` -- SimCLR training (victim, independent encoders),
  black-box stealing, linear evaluation, feature extraction;
* :mod:`~mipipe.inference.checkpoints` -- strict, ``weights_only`` checkpoints;
* :mod:`~mipipe.inference.mi` -- embedding MI, permutation test, MI score (thesis Table 3;
  torch-free);
* :mod:`~mipipe.inference.detectors` -- the theft tests (the GMM test of Dziedzic et al.
  2022, the MI-score gap) and similarity measures (linear CKA, cosine, L2; torch-free);
* :mod:`~mipipe.inference.calibration` -- verdicts per suspect and detector, error rates
  (AUC, FPR, TPR) on repeated encoders, the detection figure;
* :mod:`~mipipe.inference.tables` -- Tables 1-3;
* :mod:`~mipipe.inference.stages` -- the rule-level units, importable without Snakemake.

The old import paths ``mipipe.data``, ``mipipe.data_meta``, ``mipipe.dataset_inference``
and ``mipipe.ssl`` (with its submodules ``mipipe.ssl.train``, ``.stages``, ...) still work:
:mod:`mipipe` maps them onto these modules (the same module objects).

Names are loaded lazily: ``import mipipe.inference`` (and the MI stage) does not import torch.
"""

from importlib import import_module

_API = {
    "augment": ["augment_batch", "simclr_augmentation"],
    "calibration": ["detection_summary", "detection_verdicts", "plot_detection"],
    "checkpoints": ["CheckpointError", "load_checkpoint", "load_state_strict", "save_checkpoint"],
    "data": ["CHANNELS", "CHECKSUMS", "DATASETS", "SPLITS", "ImageSet", "load_images",
             "split_index"],
    "detectors": ["ALTERNATIVES", "GMMTestResult", "MIScoreGapResult",
                  "centred_cosine_similarity", "centred_l2_distance", "gmm_test",
                  "l2_normalise_rows", "linear_cka", "mi_score_gap"],
    "encoders": ["CifarResNet", "ProjectionHead", "SmallCNN", "build_encoder", "build_head",
                 "to_input"],
    "losses": ["nt_xent", "stealing_loss"],
    "mi": ["ESTIMATORS", "PSI_TERMS", "PermutationResult", "drop_constant_columns",
           "embedding_mi", "mi_max_closed_form", "mi_score", "mi_stage", "normalise_embeddings",
           "pair_mi", "permutation_test", "permutations", "read_embedding", "score_table"],
    "training": ["HEAD_VARIANTS", "VICTIM_HEAD_VARIANTS", "black_box", "extract_features",
                 "linear_eval", "linear_eval_features", "resolve_device", "seed_everything", "steal",
                 "stealing_heads", "train_simclr"],
}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

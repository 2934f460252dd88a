"""Self-supervised encoders for dataset inference (thesis §5; Dziedzic et al. 2022).

* :mod:`~mipipe.ssl.encoders` -- CIFAR-style ResNet18/34 (512-d), a small CNN, the
  projection head;
* :mod:`~mipipe.ssl.augment` -- SimCLR views with torchvision.transforms.v2;
* :mod:`~mipipe.ssl.losses` -- NT-Xent and the stealing InfoNCE;
* :mod:`~mipipe.ssl.train` -- SimCLR training, black-box stealing, linear evaluation,
  feature extraction;
* :mod:`~mipipe.ssl.checkpoints` -- strict, ``weights_only`` checkpoints;
* :mod:`~mipipe.ssl.stages` -- the pipeline units (rules/inference.smk);
* :mod:`~mipipe.ssl.tables` -- Tables 1-3.
"""

from importlib import import_module

# Lazy: `import mipipe.ssl.tables` (and the MI stage) must not pay for importing torch.
_API = {
    "augment": ["augment_batch", "simclr_augmentation"],
    "checkpoints": ["CheckpointError", "load_checkpoint", "load_state_strict", "save_checkpoint"],
    "encoders": ["CifarResNet", "ProjectionHead", "SmallCNN", "build_encoder", "build_head",
                 "to_input"],
    "losses": ["nt_xent", "stealing_loss"],
    "train": ["HEAD_VARIANTS", "black_box", "extract_features", "linear_eval",
              "linear_eval_features", "resolve_device", "seed_everything", "steal",
              "stealing_heads", "train_simclr"],
}
_WHERE = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What the image data sets are, without loading them (no torch import): names, splits and
colour channels. :mod:`mipipe.data` loads them; :mod:`mipipe.config` checks configs with
these facts before any job runs."""

DATASETS = ("digits", "cifar10", "svhn", "svhn_reshuffled", "stl10")

SPLITS = {
    "digits": ("train", "test"),
    "cifar10": ("train", "test"),
    "svhn": ("train", "test"),
    "svhn_reshuffled": ("train", "test"),
    "stl10": ("train", "test", "unlabeled"),
}

# colour channels of each data set's images (digits are grey)
CHANNELS = {"digits": 1, "cifar10": 3, "svhn": 3, "svhn_reshuffled": 3, "stl10": 3}

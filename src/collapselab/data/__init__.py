"""Data sets (digits, Fashion-MNIST, synthetic) and batched two-view augmentations."""

from collapselab.data.augment import (
    Augment,
    ImageAugment,
    VectorAugment,
    default_augment,
    two_views,
)
from collapselab.data.datasets import (
    DATASETS,
    FASHION_MNIST_DEFAULT_ROOT,
    Dataset,
    gaussian_mixture,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    low_rank,
    read_idx,
)

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DEFAULT_ROOT",
    "Augment",
    "Dataset",
    "ImageAugment",
    "VectorAugment",
    "default_augment",
    "gaussian_mixture",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "low_rank",
    "read_idx",
    "two_views",
]

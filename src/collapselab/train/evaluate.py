"""Evaluation of frozen features: kNN, linear probe and few-label 1-NN accuracy.

The protocols of the self-supervised literature, at the scale of these data sets:

- kNN: majority vote of the ``k = 20`` nearest training features by cosine similarity
  (Wu et al. 2018 use k = 200 on ImageNet; 20 suits ~1000 training images).
- Linear probe: multinomial logistic regression (scikit-learn, L-BFGS) on standardised
  frozen features (the "linear evaluation protocol", Chen et al. 2020, Sec. B.6).
- Few-label: 1-NN by cosine similarity with 5 labelled training examples per class, the
  mean accuracy over 10 random draws of the labelled set. The draws depend only on
  ``draw_seed`` and the labels, so every method (and raw pixels) sees the same draws.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from collapselab._pool import blas_threads

KNN_K = 20  # neighbours for the kNN accuracy
FEW_LABELS_PER_CLASS = 5  # labelled examples per class for the few-label accuracy
FEW_LABEL_DRAWS = 10  # random draws averaged by the few-label accuracy


@dataclass(frozen=True)
class FeatureEvaluation:
    """Accuracies (fractions in [0, 1]) of frozen features on the test split.

    Attributes:
        knn_accuracy: kNN, k=20, cosine, majority vote.
        linear_accuracy: logistic-regression probe.
        knn_accuracy_5_per_class: 1-NN cosine with 5 labels per class, mean of 10 draws.
        knn_accuracy_5_per_class_std: standard deviation over the 10 draws.
    """

    knn_accuracy: float
    linear_accuracy: float
    knn_accuracy_5_per_class: float
    knn_accuracy_5_per_class_std: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready dict."""
        return asdict(self)


def _unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _cosine_topk(
    train: NDArray[np.float64], test: NDArray[np.float64], k: int, block: int = 2048
) -> NDArray[np.int64]:
    """Indices ``(M, k)`` of the k most cosine-similar training rows of each test row."""
    tr, out = _unit(train), []
    for s in range(0, test.shape[0], block):
        sim = _unit(test[s : s + block]) @ tr.T  # (b, N)
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else None
        if idx is None:
            idx = np.argsort(-sim, axis=1)[:, :k]
        out.append(idx)
    return np.concatenate(out)


def knn_accuracy(
    train: NDArray[np.float64],
    y_train: NDArray[np.int64],
    test: NDArray[np.float64],
    y_test: NDArray[np.int64],
    k: int = KNN_K,
) -> float:
    """Majority vote of the k nearest training rows by cosine similarity.

    Ties go to the smallest label (``np.argmax`` of the vote counts).
    """
    k = min(k, train.shape[0])
    idx = _cosine_topk(train, test, k)  # (M, k)
    votes = y_train[idx]  # (M, k)
    classes = int(max(y_train.max(), y_test.max())) + 1
    counts = np.zeros((votes.shape[0], classes), dtype=np.int64)
    np.add.at(counts, (np.arange(votes.shape[0])[:, None], votes), 1)
    return float((counts.argmax(axis=1) == y_test).mean())


def few_label_accuracy(
    train: NDArray[np.float64],
    y_train: NDArray[np.int64],
    test: NDArray[np.float64],
    y_test: NDArray[np.int64],
    per_class: int = FEW_LABELS_PER_CLASS,
    draws: int = FEW_LABEL_DRAWS,
    draw_seed: int = 0,
) -> tuple[float, float]:
    """1-NN (cosine) with ``per_class`` labelled training rows per class.

    Returns:
        ``(mean, std)`` of the accuracy over ``draws`` random labelled sets.
    """
    rng = np.random.default_rng(draw_seed)
    te = _unit(test)
    accs = []
    for _ in range(draws):
        idx = np.concatenate(
            [
                rng.choice(np.flatnonzero(y_train == c), per_class, replace=False)
                for c in np.unique(y_train)
            ]
        )
        sim = te @ _unit(train[idx]).T  # (M, classes * per_class)
        accs.append(float((y_train[idx][sim.argmax(axis=1)] == y_test).mean()))
    return float(np.mean(accs)), float(np.std(accs))


def linear_probe_accuracy(
    train: NDArray[np.float64],
    y_train: NDArray[np.int64],
    test: NDArray[np.float64],
    y_test: NDArray[np.int64],
    max_iter: int = 1000,
) -> float:
    """Logistic regression (L2, C=1, L-BFGS) on standardised features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train)
    clf = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings():
        # a collapsed representation is not separable; the probe still reports its accuracy
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(train), y_train)
    return float(clf.score(scaler.transform(test), y_test))


def evaluate_features(
    train: NDArray[np.float64] | torch.Tensor,
    y_train: NDArray[np.int64] | torch.Tensor,
    test: NDArray[np.float64] | torch.Tensor,
    y_test: NDArray[np.int64] | torch.Tensor,
) -> FeatureEvaluation:
    """All three accuracies of frozen features (``(N, d)`` train, ``(M, d)`` test).

    Raw pixels evaluated with the same function give the baseline every method must beat.
    BLAS runs on one thread here (see :mod:`collapselab.train._threads`).
    """

    def f64(a: NDArray[np.float64] | torch.Tensor) -> NDArray[np.float64]:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        return np.asarray(arr.reshape(arr.shape[0], -1), dtype=np.float64)

    def i64(a: NDArray[np.int64] | torch.Tensor) -> NDArray[np.int64]:
        arr = a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        return np.asarray(arr, dtype=np.int64)

    tr, te, ytr, yte = f64(train), f64(test), i64(y_train), i64(y_test)
    with blas_threads(1):
        few, few_std = few_label_accuracy(tr, ytr, te, yte)
        return FeatureEvaluation(
            knn_accuracy=knn_accuracy(tr, ytr, te, yte),
            linear_accuracy=linear_probe_accuracy(tr, ytr, te, yte),
            knn_accuracy_5_per_class=few,
            knn_accuracy_5_per_class_std=few_std,
        )

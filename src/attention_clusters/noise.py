"""The noise model: every pixel drawn independently from MNIST's pixel histogram."""

import numpy as np

from . import WorkflowInputError
from .npy_stream import load_npy


def pixel_histogram(*image_arrays):
    """Counts of each value 0..255 over every pixel of the given uint8 image arrays."""
    counts = np.zeros(256, np.int64)
    for images in image_arrays:
        counts += np.bincount(np.asarray(images, np.uint8).ravel(), minlength=256)
    return counts


class NoiseSampler:
    """Draws noise images from a 256-bin pixel histogram.

    Exact to 2^-32 in probability: a uniform uint32 is compared against the
    cumulative counts scaled to 2^32. The zero bin (most pixels) is decided with
    one vector comparison; only the remaining draws go through a binary search.
    """

    def __init__(self, counts):
        counts = np.asarray(counts, np.int64)
        if counts.shape != (256,) or counts.min() < 0 or counts.sum() == 0:
            raise WorkflowInputError("noise histogram: expected 256 non-negative counts, not all zero")
        cdf = np.cumsum(counts, dtype=np.float64) / counts.sum()
        # thresholds[v] = P(value <= v) * 2^32; a draw u < thresholds[v] maps to the first such v.
        self.thresholds = np.minimum(np.floor(cdf * 2.0**32), 2.0**32).astype(np.uint64)
        self.thresholds[-1] = 2**32

    def sample(self, rng, shape):
        draws = rng.integers(0, 2**32, size=shape, dtype=np.uint32)
        out = np.zeros(shape, np.uint8)
        nonzero = draws >= self.thresholds[0]
        out[nonzero] = np.searchsorted(self.thresholds, draws[nonzero], side="right").astype(np.uint8)
        return out


def load_sampler(path):
    return NoiseSampler(load_npy(path))

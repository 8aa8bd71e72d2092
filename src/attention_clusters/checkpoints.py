"""Saving MindSpore checkpoints atomically, under names that do not depend on wrapping.

Wrapping a model in training cells (nn.TrainOneStepCell, a loss cell) prefixes its
parameters' names ("network.inner.out_weight"); a checkpoint meant to be loaded into
the bare model keeps the last part of each name.
"""

import os

from .atomic import atomic_path


def save_checkpoint(params, path):
    """Save a list of {"name", "data"} or a Cell to `path`, atomically."""
    import mindspore as ms
    with atomic_path(path) as tmp:
        ms.save_checkpoint(params, str(tmp) + ".ckpt")  # MindSpore insists on the suffix
        os.replace(str(tmp) + ".ckpt", tmp)


def save_model(cell, path):
    """Save a model's parameters under their plain names (see the module docstring)."""
    params = [{"name": p.name.rsplit(".", 1)[-1], "data": p} for p in cell.get_parameters()]
    names = [p["name"] for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names are not unique once prefixes are dropped: {names}")
    save_checkpoint(params, path)

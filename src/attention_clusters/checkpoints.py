"""Saving MindSpore checkpoints atomically, under names that do not depend on wrapping.

Wrapping a model in training cells (nn.TrainOneStepCell, a loss cell) prefixes its
parameters' names ("network.inner.classifier_weight"); a checkpoint meant to be loaded into
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


def plain_name(param):
    """A parameter's name without the prefixes of the cells around it ("score_weight")."""
    return param.name.rsplit(".", 1)[-1]


def save_model(cell, path):
    """Save a model's parameters under their plain names (see the module docstring)."""
    params = [{"name": plain_name(p), "data": p} for p in cell.get_parameters()]
    names = [p["name"] for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names are not unique once prefixes are dropped: {names}")
    save_checkpoint(params, path)


def load_into(cell, checkpoint, what="model"):
    """Load `checkpoint` into `cell` (all parameters required) and set eval mode; errors name the file."""
    import mindspore as ms

    from . import WorkflowInputError

    try:
        params = ms.load_checkpoint(str(checkpoint))
    except Exception as err:  # MindSpore raises ValueError/RuntimeError for damaged files
        raise WorkflowInputError(f"{checkpoint}: not a readable MindSpore checkpoint ({err})") from err
    expected = {p.name: tuple(p.shape) for p in cell.get_parameters()}
    mismatched = [
        f"{name} {tuple(params[name].shape)} (expected {shape})"
        for name, shape in expected.items()
        if name in params and tuple(params[name].shape) != shape
    ]
    if mismatched:
        raise WorkflowInputError(
            f"{checkpoint}: parameters of other shapes than {what} needs: "
            + ", ".join(mismatched)
            + "; was it trained with other settings?"
        )
    # MindSpore's load_param_into_net refuses another dtype with a RuntimeError naming no file.
    dtypes = {p.name: p.dtype for p in cell.get_parameters()}
    mismatched = [
        f"{name} {params[name].dtype} (expected {dtype})"
        for name, dtype in dtypes.items()
        if name in params and params[name].dtype != dtype
    ]
    if mismatched:
        raise WorkflowInputError(
            f"{checkpoint}: parameters of another type than {what} needs: "
            + ", ".join(mismatched)
            + " (the workflow writes and reads float32 checkpoints)"
        )
    missing, _ = ms.load_param_into_net(cell, params, strict_load=True)
    if missing:
        raise WorkflowInputError(f"{checkpoint}: missing parameters {missing} for {what}")
    cell.set_train(False)
    return cell

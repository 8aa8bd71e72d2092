"""The package's one training loop: epochs of seeded batches through a compiled step, progress
lines with rates and the time left, and a state saved after every epoch.

The extractor's pre-training (pretrain.py) and the sweep's stacked training (train.py) both run
their epochs through `train_epoch` and keep their state in a `TrainState` directory: the weights
and the optimizer's moments after the last complete epoch, the random generators, and the record
so far. A job killed at any moment and run again resumes after its last complete epoch and ends
with the same weights as an uninterrupted run (tested for both).
"""

import json
import logging
import time
from pathlib import Path

import mindspore as ms
import numpy as np

from . import WorkflowInputError
from .atomic import atomic_open
from .checkpoints import save_checkpoint

log = logging.getLogger("attention_clusters")


def generators(seed, spawn_keys):
    """{name: NumPy generator} for (name, SeedSequence spawn key) pairs, all from `seed`: each
    stream (batch order, dropout masks) is its own, whatever the others draw."""
    return {
        name: np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
        for name, key in spawn_keys
    }


class TrainState:
    """The files of a resumable training job in one directory.

    epoch-NNNN.ckpt holds the trained cells' parameters (the network's and the optimizer's) after
    epoch NNNN; state.json (the epoch, the random generators' states, the job's record) names it and
    is written last, atomically, so it is the commit point: a job killed at any moment resumes from
    a consistent set. Other files the job keeps there (train.py's best-I.ckpt) are its own.
    """

    def __init__(self, directory):
        self.dir = Path(directory)
        self.json = self.dir / "state.json"
        if self.dir.is_symlink():
            # Training writes checkpoints into it and deletes old ones: never through a link.
            raise WorkflowInputError(
                f"training state directory {self.dir} is a symbolic link; refusing to write and delete "
                "files through it: remove the link and rerun"
            )

    def path(self, name):
        return self.dir / name

    def load(self, settings):
        """The saved state if it was made with exactly `settings` (which include the digests of
        the inputs and code), else None, with a log line saying why it was discarded."""
        if not self.json.exists():
            return None
        try:
            state = json.loads(self.json.read_text())
            saved = state["settings"]
            checkpoint = self.checkpoint(state)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning(
                "state in %s is unreadable (%s: %s); discarding it and starting afresh",
                self.dir,
                type(err).__name__,
                err,
            )
            return None
        if saved != settings:
            changed = sorted(key for key in set(saved) | set(settings) if saved.get(key) != settings.get(key))
            log.info(
                "state in %s is from other settings or inputs (%s differ); discarding it and starting afresh",
                self.dir,
                ", ".join(changed),
            )
            return None
        if not checkpoint.exists():
            log.info("state in %s is incomplete; starting afresh", self.dir)
            return None
        return state

    def checkpoint(self, state):
        return self.dir / state["checkpoint"]

    def save(self, cells, state):
        """Save the parameters of `cells` (a network and its optimizer, which holds the network's
        parameters too, besides its moments and step count) and then `state`, naming them."""
        self.dir.mkdir(parents=True, exist_ok=True)
        params = {}
        for cell in cells:
            for param in cell.get_parameters():
                params.setdefault(param.name, param)
        name = f"epoch-{state['epoch']:04d}.ckpt"
        save_checkpoint([{"name": n, "data": p} for n, p in params.items()], self.dir / name)
        state["checkpoint"] = name
        with atomic_open(self.json, "w") as handle:
            json.dump(state, handle)
        for old in self.dir.glob("epoch-*.ckpt"):
            if old.name != name:
                old.unlink()


def resume(store, settings, cells, rngs, epochs, fresh, complete=lambda state: True):
    """The state saved in `store` with these settings, loaded into `cells` and the generators `rngs`
    (a list of {name: generator}, one per model); or `fresh` if there is none (or it is from other
    settings, damaged, or not `complete` by the job's own measure)."""
    state = store.load(settings)
    try:
        if state is not None and not complete(state):
            log.info("state in %s is incomplete; starting afresh", store.dir)
            state = None
    except (KeyError, TypeError, ValueError) as err:  # a state file of the right settings, damaged inside
        log.warning("state in %s is unreadable (%s: %s); starting afresh", store.dir, type(err).__name__, err)
        state = None
    if state is not None:
        try:
            saved = ms.load_checkpoint(str(store.checkpoint(state)))
        except Exception as err:  # MindSpore raises ValueError/RuntimeError for a damaged file
            log.warning(
                "state checkpoint %s is unreadable (%s); discarding the state and starting afresh",
                store.checkpoint(state),
                err,
            )
            state = None
    if state is None:
        return {"settings": settings, "epoch": 0, **fresh}
    for model, saved_states in zip(rngs, state["rngs"], strict=True):
        for name, rng in model.items():
            rng.bit_generator.state = saved_states[name]
    for cell in cells:
        ms.load_param_into_net(cell, saved, strict_load=False)
    log.info("resuming after epoch %d of %d from %s", state["epoch"], epochs, store.checkpoint(state))
    return state


def save_epoch(store, cells, state, epoch, rngs):
    """Commit epoch `epoch`: the generators' states into `state`, then the cells and the state."""
    state["epoch"] = epoch
    state["rngs"] = [{name: rng.bit_generator.state for name, rng in model.items()} for model in rngs]
    store.save(cells, state)


def finite_loss(progress):
    """The default check of each step's loss: a NaN or an infinity stops the job, naming the step."""

    def check(step, loss):
        if not np.all(np.isfinite(loss)):
            raise FloatingPointError(f"{progress.what}, step {step}: loss is {loss}; stopping")

    return check


def train_epoch(train_step, batches, progress, per_step, check_loss=None, loss_scale=1):
    """One epoch: `train_step(*batch)` for each batch of `batches` (tuples of NumPy arrays), each
    step's loss (a scalar, or one per model of a stack) divided by `loss_scale` and passed to
    `check_loss(step, loss)`, `per_step` units reported to `progress` after each step.
    Returns ((mean loss over the steps, the last step's loss), seconds)."""
    check_loss = check_loss or finite_loss(progress)
    started, loss_sum, steps, loss = time.perf_counter(), 0.0, 0, np.nan
    for batch in batches:
        # from_numpy shares the fresh arrays instead of copying them.
        loss = train_step(*(ms.from_numpy(part) for part in batch)).asnumpy() / loss_scale
        steps += 1
        check_loss(steps, loss)
        loss_sum = loss_sum + loss.astype(np.float64)
        progress.update(per_step)
    return (loss_sum / max(1, steps), loss), time.perf_counter() - started

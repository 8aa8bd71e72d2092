"""Training and evaluation of one AttentionCluster model, resumable epoch by epoch.

Best-epoch selection uses a validation split held out of the training videos (the seed
chose on the test set). After every epoch the weights, Adam's state, both random
generators and the history are saved atomically in the job's state directory, so a
killed job that is run again resumes after the last complete epoch and ends with the
same weights as an uninterrupted run.
"""

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn

from . import WorkflowInputError
from .atomic import atomic_open, atomic_path
from .checkpoints import save_checkpoint, save_model
from .layers import dropout_keep
from .metrics import evaluate
from .model import build_model, parameter_count
from .schedules import adam_learning_rate, learning_rates

log = logging.getLogger("attention_clusters")
# The training's random generators, with their SeedSequence spawn keys: batch order, dropout masks.
RNGS = (("batch_rng", 12), ("dropout_rng", 13))


@dataclass(frozen=True)
class TrainConfig:
    """One training job: a sweep row's network and schedule, and the run's choices. The rule's
    settings hold it as a dict (`job`); msrun's ranks receive it in their spec; the resumable
    state is keyed by it (with the data's and the code's digests)."""

    fc: int
    natt: int
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    attention: str = "shift"
    val_fraction: float = 0.1
    seed: int = 1
    schedule: str = "constant"  # schedules.SCHEDULES
    warmup_epochs: float = 0.0
    patience: int = 0  # stop after this many epochs without a better validation top-1; 0 never


def split_validation(labels, fraction, seed):
    """Indices (train, validation): a seeded random `fraction` of all videos (not per label) is held
    out for validation, at least one when the fraction is above zero."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(11,)))
    order = rng.permutation(labels.shape[0])
    n_val = int(round(labels.shape[0] * fraction))
    if fraction > 0:
        n_val = max(1, n_val)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class TrainState:
    """The files of a resumable run in one directory.

    epoch-NNNN.ckpt holds the model and Adam's state after epoch NNNN; state.json (epoch,
    random generators, history, best epoch) names it and is written last, atomically, so
    it is the commit point: a run killed at any moment resumes from a consistent pair.
    """

    def __init__(self, directory):
        self.dir = Path(directory)
        self.json, self.best = self.dir / "state.json", self.dir / "best.ckpt"

    def load(self, settings):
        """The saved state if it was made with exactly `settings` (which include the digests of
        the inputs and code), else None, with a log line saying why it was discarded."""
        if not self.json.exists():
            return None
        try:
            state = json.loads(self.json.read_text())
            saved = state["settings"]
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
        if not (self.dir / state["checkpoint"]).exists() or not self.best.exists():
            log.info("state in %s is incomplete; starting afresh", self.dir)
            return None
        return state

    def checkpoint(self, state):
        return self.dir / state["checkpoint"]

    def save(self, model, optimizer, state):
        self.dir.mkdir(parents=True, exist_ok=True)
        # The optimizer holds the model's parameters too, besides its moments and step counts.
        params = {}
        for param in list(model.get_parameters()) + list(optimizer.get_parameters()):
            params.setdefault(param.name, param)
        name = f"epoch-{state['epoch']:04d}.ckpt"
        save_checkpoint([{"name": n, "data": p} for n, p in params.items()], self.dir / name)
        state["checkpoint"] = name
        with atomic_open(self.json, "w") as handle:
            json.dump(state, handle)
        for old in self.dir.glob("epoch-*.ckpt"):
            if old.name != name:
                old.unlink()


class LossWithDropout(nn.Cell):
    """(x (N, L, F), labels (N,), dropout keep-mask (N, F*n)) -> the batch's summed cross-entropy."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        # Summed over the batch, as in the seed: its loss had reduction "none", and the gradient
        # of a vector loss is that of its sum. Under Adam the scale of the loss only sets how
        # strong the weight decay is against it: against the batch mean, the seed's 1e-4 is 64x
        # stronger, and at paper scale fc2/natt8 and fc2/natt16 stalled at 16-18 % top-1.
        # Not the fused ops.SparseSoftmaxCrossEntropyWithLogits (0.4 ms faster per fc2/natt8 step):
        # on CPU it returns inf once a target's logit is ~90 below the largest (it takes the log
        # of an underflowed probability), which a long training can reach.
        self.loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="sum")

    def construct(self, x, y, keep):
        return self.loss(self.inner.logits(x, keep), y)


def make_train_step(model, lr, weight_decay):
    """(step(x, y, keep) -> the batch's summed loss, optimizer): Adam on LossWithDropout.

    `lr` is a float or one learning rate per step (learning_rates()); Adam counts its steps in
    its `global_step` parameter, which the resumable state saves with the moments.

    Built as nn.TrainOneStepCell: with MindSpore 2.10 on CPU, the same step written as an
    @ms.jit function around ms.value_and_grad ran 5x slower (112 ms against 20 ms for
    fc2/natt8 at batch 64, both measured under the same load).
    """
    # One parameter group, so that weight decay applies to every parameter as in the seed (whose
    # shifting parameters are named w and b). Without groups nn.Adam exempts names containing
    # "beta" or "gamma" (meant for batch norm): our beta kept its size while alpha decayed.
    params = [{"params": model.trainable_params(), "weight_decay": weight_decay}]
    optimizer = nn.Adam(params, learning_rate=adam_learning_rate(lr), weight_decay=weight_decay)
    step = nn.TrainOneStepCell(LossWithDropout(model), optimizer)
    step.set_train(True)
    return step, optimizer


def rank_rows(step, batch_size, rank=0, workers=1):
    """Rows of `order` that `rank` trains on at `step`: every worker takes its own `batch_size` slice of
    the step's global batch of `workers * batch_size` (the data is sharded per rank, as the seed's
    distributed runs shard their dataset; gradients are averaged across ranks)."""
    start = (step * workers + rank) * batch_size
    return slice(start, start + batch_size)


def train_model(
    features, labels, config, state_dir, checkpoint_out, history_out, rank=0, workers=1, inputs=None
):
    """Train one model (a TrainConfig) on features (N, L, F) and labels (N,); write the best
    checkpoint (by validation top-1) and the per-epoch history; return a summary.

    The learning rate follows config.schedule (learning_rates()); with config.patience > 0
    training stops once validation top-1 has not improved for that many epochs. `inputs`
    (digests of the features and the code) joins the settings that key the resumable state.

    With `workers` > 1 this runs in every rank of a data-parallel job (see distributed.py): all ranks
    draw the same batch order and dropout masks from the same generators and each trains on its
    slice; MindSpore averages the gradients. Only rank 0 evaluates and writes files; the others
    return None.
    """
    c = config
    train_idx, val_idx = split_validation(labels, c.val_fraction, c.seed)
    check_job(c, train_idx.size, workers)
    settings = {**asdict(c), "videos": int(labels.shape[0]), **(inputs or {})}
    if workers > 1:  # absent for one worker, so the state of single-worker runs stays resumable
        settings["workers"] = workers
    steps = train_idx.size // (c.batch_size * workers)
    model = build_model(c.fc, c.natt, features.shape[2], features.shape[1], c.attention, c.seed)
    rates = learning_rates(c.schedule, c.lr, c.epochs, steps, c.warmup_epochs)
    train_step, optimizer = make_train_step(model, rates, c.weight_decay)
    rngs = {
        name: np.random.default_rng(np.random.SeedSequence(c.seed, spawn_key=(key,))) for name, key in RNGS
    }
    store = TrainState(state_dir)
    state = resume(store, settings, model, optimizer, rngs, c.epochs)

    x_train, y_train = features[train_idx], labels[train_idx].astype(np.int32)
    x_val, y_val = features[val_idx], labels[val_idx]
    for epoch in range(state["epoch"] + 1, c.epochs + 1):
        if stalled(state, c.patience, epoch):
            break
        losses, seconds = train_epoch(
            train_step, model, x_train, y_train, c, epoch, steps, rngs, rank, workers
        )
        if rank == 0:
            record_epoch(model, x_val, y_val, c, epoch, steps, workers, losses, seconds, state, store)
        else:
            log.info(
                "rank %d epoch %d: %d steps, mean loss %.4f on this rank's shard, %.1f s",
                *(rank, epoch, steps, losses[0], seconds),
            )
        state.update(epoch=epoch, **{name: rng.bit_generator.state for name, rng in rngs.items()})
        if rank == 0:
            store.save(model, optimizer, state)

    if workers > 1:
        # Equal digests across ranks show that the gradients were averaged: each rank saw other data.
        log.info("rank %d of %d: final weights sha256 %s", rank, workers, weights_digest(model))
    if rank != 0:
        return None
    write_outputs(store, state, checkpoint_out, history_out)
    best = {key: state[key] for key in ("best_epoch", "best_val_top1", "train_seconds")}
    return {**settings, **best, "parameters": parameter_count(model)}


def check_job(config, train_videos, workers):
    """One clear error before any training for a job that cannot run as asked."""
    if train_videos < config.batch_size * workers:
        raise WorkflowInputError(
            f"training split has {train_videos} videos, fewer than one batch of {config.batch_size}"
            + (f" for each of {workers} workers" if workers > 1 else "")
        )
    if config.patience and workers > 1:
        # Only rank 0 validates: the other ranks could not tell when to stop, and would wait forever.
        raise WorkflowInputError(
            f"fc{config.fc}/natt{config.natt}: patience {config.patience} needs one worker "
            f"(distributed.workers is {workers}); set the row's patience to 0 or use one worker"
        )


def stalled(state, patience, epoch):
    """Whether validation top-1 has not improved for `patience` epochs before `epoch` (0: never)."""
    if not patience or epoch - state["best_epoch"] <= patience:
        return False
    log.info(
        "stopping after epoch %d: validation top-1 has not improved for %d epochs (best %.4f at epoch %d)",
        *(epoch - 1, patience, state["best_val_top1"], state["best_epoch"]),
    )
    return True


def resume(store, settings, model, optimizer, rngs, epochs):
    """The state saved in `store` with these settings, loaded into the model, the optimizer and the
    generators; or a fresh state if there is none (or it is from other settings, or damaged)."""
    state = store.load(settings)
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
        return {
            "settings": settings,
            "epoch": 0,
            "history": [],
            "best_epoch": 0,
            "best_val_top1": -1.0,
            "train_seconds": 0.0,
        }
    for name, rng in rngs.items():
        rng.bit_generator.state = state[name]
    ms.load_param_into_net(model, saved, strict_load=False)
    ms.load_param_into_net(optimizer, saved, strict_load=False)
    log.info("resuming after epoch %d of %d from %s", state["epoch"], epochs, store.checkpoint(state))
    return state


def train_epoch(train_step, model, x_train, y_train, config, epoch, steps, rngs, rank, workers):
    """One epoch of `steps` steps; ((mean loss per video, the last step's), seconds)."""
    batch_size = config.batch_size
    model.set_train(True)
    started = time.perf_counter()
    order = rngs["batch_rng"].permutation(x_train.shape[0])
    loss_sum, last_report = 0.0, started
    own = rank_rows(0, batch_size, rank, workers)  # this rank's rows of each step's dropout masks
    width = config.natt * x_train.shape[2]
    for step in range(steps):
        batch = order[rank_rows(step, batch_size, rank, workers)]
        keep = dropout_keep(rngs["dropout_rng"], batch_size * workers, width)[own]
        # The step returns the batch's summed loss; logs and history give the per-video mean.
        # from_numpy shares the fresh arrays instead of copying them (70 us a step).
        loss = (
            float(
                train_step(
                    ms.from_numpy(x_train[batch]),
                    ms.from_numpy(y_train[batch]),
                    ms.from_numpy(np.ascontiguousarray(keep)),
                ).asnumpy()
            )
            / batch_size
        )
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"epoch {epoch} step {step + 1}: loss is {loss}; stopping "
                f"(lr {config.lr}, weight decay {config.weight_decay})"
            )
        loss_sum += loss
        now = time.perf_counter()
        if now - last_report > 30:
            rate = (step + 1) / (now - started)
            log.info(
                "epoch %d: step %d/%d, %.1f steps/s, ETA %.0f s",
                epoch,
                step + 1,
                steps,
                rate,
                (steps - step - 1) / rate + (config.epochs - epoch) * steps / rate,
            )
            last_report = now
    return (loss_sum / max(1, steps), loss), time.perf_counter() - started


def record_epoch(model, x_val, y_val, config, epoch, steps, workers, losses, seconds, state, store):
    """Rank 0 after each epoch: validation top-1/top-5, the epoch's log lines and history row, and
    the best checkpoint so far (by validation top-1; the last epoch without a validation split)."""
    val_top1, val_top5, _ = evaluate(model, x_val, y_val) if y_val.size else (float("nan"),) * 2 + (None,)
    mean_loss, last_loss = losses
    # The first two lines as the seed's LossMonitor and TimeMonitor wrote them.
    log.info("epoch: %d step: %d, loss is %s", epoch, steps, last_loss)
    log.info("epoch time: %.3f ms, per step time: %.3f ms", seconds * 1e3, seconds * 1e3 / max(1, steps))
    samples = steps * config.batch_size * workers
    log.info(
        "epoch %d/%d: mean loss %.4f, validation top-1 %.4f top-5 %.4f, %.0f samples/s, ETA %.0f s",
        *(
            epoch,
            config.epochs,
            mean_loss,
            val_top1,
            val_top5,
            samples / seconds,
            (config.epochs - epoch) * seconds,
        ),
    )
    row = dict(
        epoch=epoch,
        loss=mean_loss,
        last_loss=last_loss,
        val_top1=val_top1,
        val_top5=val_top5,
        seconds=seconds,
    )
    state["history"].append(row)
    state["train_seconds"] += seconds
    if val_top1 > state["best_val_top1"] or not y_val.size:
        state["best_val_top1"], state["best_epoch"] = val_top1, epoch
        save_model(model, store.best)


def write_outputs(store, state, checkpoint_out, history_out):
    """The best epoch's checkpoint and the history table (epoch, mean loss, validation top-1/top-5, seconds)."""
    with atomic_path(checkpoint_out) as tmp:
        tmp.write_bytes(store.best.read_bytes())
    with atomic_open(history_out, "w") as handle:
        handle.write("epoch\tloss\tval_top1\tval_top5\tseconds\n")
        for row in state["history"]:
            handle.write(
                f"{row['epoch']}\t{row['loss']:.6f}\t{row['val_top1']:.6f}\t{row['val_top5']:.6f}\t"
                f"{row['seconds']:.3f}\n"
            )


def weights_digest(model):
    digest = hashlib.sha256()
    for param in sorted(model.trainable_params(), key=lambda p: p.name):
        digest.update(param.name.encode())
        digest.update(np.ascontiguousarray(param.asnumpy()).tobytes())
    return digest.hexdigest()

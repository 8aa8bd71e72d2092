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
from pathlib import Path

import numpy as np

from . import WorkflowInputError
from .atomic import atomic_open, atomic_path
from .checkpoints import load_into, save_checkpoint, save_model
from .model import build_model, parameter_count
from .sweep import SCHEDULES

log = logging.getLogger("attention_clusters")
TOPK = 5


def split_validation(labels, fraction, seed):
    """Indices (train, validation): a seeded random `fraction` of all videos (not per label) is held
    out for validation, at least one when the fraction is above zero."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(11,)))
    order = rng.permutation(labels.shape[0])
    n_val = int(round(labels.shape[0] * fraction))
    if fraction > 0:
        n_val = max(1, n_val)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def topk_correct(logits, labels, k=TOPK):
    """(top-1 hits, top-k hits) for a batch of logits."""
    top = np.argpartition(-logits, k, axis=1)[:, :k] if logits.shape[1] > k else np.argsort(-logits, axis=1)
    best = logits.argmax(axis=1)
    return int((best == labels).sum()), int((top == labels[:, None]).any(axis=1).sum())


def evaluate(model, features, labels, batch_size=1024):
    """top-1, top-5 accuracy and the predictions of `model` (eval mode) on in-memory features."""
    import mindspore as ms
    model.set_train(False)
    top1 = top5 = 0
    predictions = np.empty(labels.shape[0], np.int64)
    for start in range(0, labels.shape[0], batch_size):
        logits = model(ms.Tensor(features[start:start + batch_size])).asnumpy()
        hit1, hit5 = topk_correct(logits, labels[start:start + batch_size])
        top1, top5 = top1 + hit1, top5 + hit5
        predictions[start:start + batch_size] = logits.argmax(axis=1)
    n = max(1, labels.shape[0])
    return top1 / n, top5 / n, predictions


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
            log.warning("state in %s is unreadable (%s: %s); discarding it and starting afresh",
                        self.dir, type(err).__name__, err)
            return None
        if saved != settings:
            changed = sorted(key for key in set(saved) | set(settings) if saved.get(key) != settings.get(key))
            log.info("state in %s is from other settings or inputs (%s differ); discarding it and starting afresh",
                     self.dir, ", ".join(changed))
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


def learning_rates(schedule, lr, epochs, steps_per_epoch, warmup_epochs=0.0):
    """The learning rate of every step: `lr` itself for a constant schedule without warm-up
    (a float, which keeps Adam's graph as it was), else a float32 array of epochs x steps values.

    Warm-up rises linearly from lr/25 to lr over `warmup_epochs`; then `constant` stays at lr and
    `cosine` anneals to 0 along half a cosine (with the warm-up, a one-cycle schedule).
    """
    if schedule not in SCHEDULES:
        raise WorkflowInputError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if schedule == "constant" and warmup_epochs == 0:
        return lr
    total = epochs * steps_per_epoch
    step = np.arange(total, dtype=np.float64)
    warmup = min(total, int(round(warmup_epochs * steps_per_epoch)))
    rates = np.full(total, lr, np.float64)
    if warmup:
        rates[:warmup] = lr / 25 + (lr - lr / 25) * step[:warmup] / warmup
    if schedule == "cosine" and total > warmup:
        progress = (step[warmup:] - warmup) / (total - warmup)
        rates[warmup:] = lr * 0.5 * (1 + np.cos(np.pi * progress))
    return rates.astype(np.float32)


def adam_learning_rate(rates):
    """learning_rates()'s result as nn.Adam's `learning_rate`: the float itself, or a Tensor of
    the per-step rates (MindSpore's dynamic learning rate: entry global_step at each step)."""
    if isinstance(rates, float):
        return rates
    import mindspore as ms
    return ms.Tensor(rates)


def make_train_step(model, lr, weight_decay):
    """(step(x, y, keep) -> the batch's summed loss, optimizer): Adam on softmax cross-entropy.

    `lr` is a float or one learning rate per step (learning_rates()); Adam counts its steps in
    its `global_step` parameter, which the resumable state saves with the moments.

    Built as nn.TrainOneStepCell: with MindSpore 2.10 on CPU, the same step written as an
    @ms.jit function around ms.value_and_grad ran 5x slower (112 ms against 20 ms for
    fc2/natt8 at batch 64, both measured under the same load).
    """
    from mindspore import nn

    class LossWithDropout(nn.Cell):
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

    # One parameter group, so that weight decay applies to every parameter as in the seed (whose
    # shifting parameters are named w and b). Without groups nn.Adam exempts names containing
    # "beta" or "gamma" (meant for batch norm): our beta kept its size while alpha decayed.
    params = [{"params": model.trainable_params(), "weight_decay": weight_decay}]
    optimizer = nn.Adam(params, learning_rate=adam_learning_rate(lr), weight_decay=weight_decay)
    step = nn.TrainOneStepCell(LossWithDropout(model), optimizer)
    step.set_train(True)
    return step, optimizer


def dropout_keep(rng, batch, width):
    """A (batch, width) dropout keep-mask for the networks' rate 0.5, scaled by 1/(1-0.5) = 2,
    from a seeded NumPy generator: one random bit per element. Bits rather than float draws: a
    fc2/natt128 mask (64 x 6,400) took 1 ms of host time per step as floats, 0.15 ms as bits."""
    packed = rng.integers(0, 256, size=(batch, (width + 7) // 8), dtype=np.uint8)
    return np.unpackbits(packed, axis=1, count=width).astype(np.float32) * np.float32(2.0)


def rank_rows(step, batch_size, rank=0, workers=1):
    """Rows of `order` that `rank` trains on at `step`: every worker takes its own `batch_size` slice of
    the step's global batch of `workers * batch_size` (the data is sharded per rank, as the seed's
    distributed runs shard their dataset; gradients are averaged across ranks)."""
    start = (step * workers + rank) * batch_size
    return slice(start, start + batch_size)


def train_model(features, labels, fc, natt, attention, epochs, lr, weight_decay, batch_size, val_fraction, seed,
                state_dir, checkpoint_out, history_out, rank=0, workers=1, schedule="constant", warmup_epochs=0.0,
                patience=0, inputs=None):
    """Train one model; write the best checkpoint and the per-epoch history; return a summary.

    The learning rate follows `schedule` with `warmup_epochs` (learning_rates()); with `patience`
    > 0 training stops once validation top-1 has not improved for that many epochs. `inputs`
    (digests of the features and the code) joins the settings that key the resumable state.

    With `workers` > 1 this runs in every rank of a data-parallel job (see distributed.py): all ranks
    draw the same batch order and dropout masks from the same generators and each trains on its
    slice; MindSpore averages the gradients. Only rank 0 evaluates and writes files; the others
    return None.
    """
    import mindspore as ms

    train_idx, val_idx = split_validation(labels, val_fraction, seed)
    if train_idx.size < batch_size * workers:
        raise WorkflowInputError(
            f"training split has {train_idx.size} videos, fewer than one batch of {batch_size}"
            + (f" for each of {workers} workers" if workers > 1 else ""))
    settings = {"fc": fc, "natt": natt, "attention": attention, "epochs": epochs, "lr": lr,
                "weight_decay": weight_decay, "batch_size": batch_size, "val_fraction": val_fraction, "seed": seed,
                "videos": int(labels.shape[0]), "schedule": schedule, "warmup_epochs": warmup_epochs,
                "patience": patience, **(inputs or {})}
    if workers > 1:  # absent for one worker, so the state of single-worker runs stays resumable
        settings["workers"] = workers
    writer = rank == 0
    steps = train_idx.size // (batch_size * workers)
    model = build_model(fc, natt, features.shape[2], features.shape[1], attention, seed)
    rates = learning_rates(schedule, lr, epochs, steps, warmup_epochs)
    train_step, optimizer = make_train_step(model, rates, weight_decay)

    batch_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(12,)))
    dropout_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(13,)))
    store = TrainState(state_dir)
    state = store.load(settings)
    if state is not None:
        try:
            saved = ms.load_checkpoint(str(store.checkpoint(state)))
        except Exception as err:  # MindSpore raises ValueError/RuntimeError for a damaged file
            log.warning("state checkpoint %s is unreadable (%s); discarding the state and starting afresh",
                        store.checkpoint(state), err)
            state = None
    if state is not None:
        batch_rng.bit_generator.state = state["batch_rng"]
        dropout_rng.bit_generator.state = state["dropout_rng"]
        ms.load_param_into_net(model, saved, strict_load=False)
        ms.load_param_into_net(optimizer, saved, strict_load=False)
        log.info("resuming after epoch %d of %d from %s", state["epoch"], epochs, store.checkpoint(state))
    else:
        state = {"settings": settings, "epoch": 0, "history": [], "best_epoch": 0, "best_val_top1": -1.0,
                 "train_seconds": 0.0}

    x_train, y_train = features[train_idx], labels[train_idx].astype(np.int32)
    x_val, y_val = features[val_idx], labels[val_idx]
    width = natt * features.shape[2]
    for epoch in range(state["epoch"] + 1, epochs + 1):
        if patience and epoch - state["best_epoch"] > patience:
            log.info("stopping after epoch %d: validation top-1 has not improved for %d epochs (best %.4f at "
                     "epoch %d)", epoch - 1, patience, state["best_val_top1"], state["best_epoch"])
            break
        model.set_train(True)
        started = time.perf_counter()
        order = batch_rng.permutation(x_train.shape[0])
        loss_sum, last_report = 0.0, started
        own = rank_rows(0, batch_size, rank, workers)  # this rank's rows of each step's dropout masks
        for step in range(steps):
            batch = order[rank_rows(step, batch_size, rank, workers)]
            keep = dropout_keep(dropout_rng, batch_size * workers, width)[own]
            # The step returns the batch's summed loss; logs and history give the per-video mean.
            # from_numpy shares the fresh arrays instead of copying them (70 us a step).
            loss = float(train_step(ms.from_numpy(x_train[batch]), ms.from_numpy(y_train[batch]),
                                    ms.from_numpy(np.ascontiguousarray(keep))).asnumpy()) / batch_size
            if not np.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch} step {step + 1}: loss is {loss}; stopping "
                                         f"(lr {lr}, weight decay {weight_decay})")
            loss_sum += loss
            now = time.perf_counter()
            if now - last_report > 30:
                rate = (step + 1) / (now - started)
                log.info("epoch %d: step %d/%d, %.1f steps/s, ETA %.0f s", epoch, step + 1, steps, rate,
                         (steps - step - 1) / rate + (epochs - epoch) * steps / rate)
                last_report = now
        seconds = time.perf_counter() - started
        if not writer:
            log.info("rank %d epoch %d: %d steps, mean loss %.4f on this rank's shard, %.1f s",
                     rank, epoch, steps, loss_sum / max(1, steps), seconds)
            continue
        val_top1, val_top5, _ = evaluate(model, x_val, y_val) if y_val.size else (float("nan"),) * 2 + (None,)
        log.info("epoch: %d step: %d, loss is %s", epoch, steps, loss)
        log.info("epoch time: %.3f ms, per step time: %.3f ms", seconds * 1e3, seconds * 1e3 / max(1, steps))
        left = (epochs - epoch) * seconds
        log.info("epoch %d/%d: mean loss %.4f, validation top-1 %.4f top-5 %.4f, %.0f samples/s, ETA %.0f s",
                 epoch, epochs, loss_sum / max(1, steps), val_top1, val_top5,
                 steps * batch_size * workers / seconds, left)
        state["history"].append({"epoch": epoch, "loss": loss_sum / max(1, steps), "last_loss": loss,
                                 "val_top1": val_top1, "val_top5": val_top5, "seconds": seconds})
        state["train_seconds"] += seconds
        if val_top1 > state["best_val_top1"] or not y_val.size:
            state["best_val_top1"], state["best_epoch"] = val_top1, epoch
            save_model(model, store.best)
        state.update(epoch=epoch, batch_rng=batch_rng.bit_generator.state,
                     dropout_rng=dropout_rng.bit_generator.state)
        store.save(model, optimizer, state)

    if workers > 1:
        # Equal digests across ranks show that the gradients were averaged: each rank saw other data.
        log.info("rank %d of %d: final weights sha256 %s", rank, workers, weights_digest(model))
    if not writer:
        return None
    with atomic_path(checkpoint_out) as tmp:
        tmp.write_bytes(store.best.read_bytes())
    with atomic_open(history_out, "w") as handle:
        handle.write("epoch\tloss\tval_top1\tval_top5\tseconds\n")
        for row in state["history"]:
            handle.write(f"{row['epoch']}\t{row['loss']:.6f}\t{row['val_top1']:.6f}\t{row['val_top5']:.6f}\t"
                         f"{row['seconds']:.3f}\n")
    return {**settings, "best_epoch": state["best_epoch"], "best_val_top1": state["best_val_top1"],
            "train_seconds": state["train_seconds"], "parameters": parameter_count(model)}


def weights_digest(model):
    digest = hashlib.sha256()
    for param in sorted(model.trainable_params(), key=lambda p: p.name):
        digest.update(param.name.encode())
        digest.update(np.ascontiguousarray(param.asnumpy()).tobytes())
    return digest.hexdigest()


def load_model(checkpoint, fc, natt, attention="shift", feature_dim=50, frames=25):
    model = build_model(fc, natt, feature_dim, frames, attention)
    return load_into(model, checkpoint, f"fc={fc} natt={natt} attention={attention}")

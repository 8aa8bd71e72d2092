"""Training of AttentionCluster models, several at once, resumable epoch by epoch.

A training job trains a stack of models of one (fc, natt, attention): a row's seeds, or
candidate schedules of one seed. Each model keeps what makes it itself: its initialisation
(its seed), its validation split, batch order and dropout masks (its own generators), its
learning-rate schedule and weight decay, and its best epoch; one step updates them all
(StackedAttentionCluster, StackedAdam). A model trained in a stack equals the same model
trained alone to float rounding (tested).

Best-epoch selection uses validation videos (the ModelZoo scripts chose on the test set): in the
workflow, videos made from digits that no training video shows (pools.py); without them, a share
of the training videos held out per model. The epochs run through the package's one training
loop (loop.py): after every epoch the weights, Adam's state, the random generators and the
histories are saved atomically in the job's state directory, so a killed job that is run again
resumes after the last complete epoch and ends with the same weights as an uninterrupted run.
"""

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, nn, ops

from . import WorkflowInputError
from .atomic import atomic_open, atomic_path
from .checkpoints import plain_name, save_checkpoint
from .constants import N_CLASSES
from .layers import dropout_keep
from .loop import TrainState, generators, resume, save_epoch, train_epoch
from .metrics import topk_correct
from .model import SCORING, StackedAttentionCluster, build_model, parameter_count
from .progress import Progress
from .schedules import adam_learning_rate, learning_rates

log = logging.getLogger("attention_clusters")
# Each model's random generators, with their SeedSequence spawn keys: batch order, dropout masks.
RNGS = (("batch", 12), ("dropout", 13))


@dataclass(frozen=True)
class TrainConfig:
    """One model of a training job: a sweep row's network and schedule, its seed, and the run's
    choices. The rule's settings hold a job's models as dicts (`jobs`); msrun's ranks receive them
    in their spec; the resumable state is keyed by them (with the data's and the code's digests)."""

    fc: int
    natt: int
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    attention: str = "shift"
    val_fraction: float = 0.1  # training videos held out for validation when no validation videos are given
    seed: int = 1
    schedule: str = "constant"  # schedules.SCHEDULES
    warmup_epochs: float = 0.0
    patience: int = 0  # stop after this many epochs without a better validation top-1; 0 never
    # The scoring network's (model.SCORING) learning rate as a multiple of lr: Adam moves each weight
    # by about lr per step whatever its gradient, and a score is a sum over 50 features of size ~10,
    # so at the full rate the frames' softmax saturates within a few steps and a digit whose frames
    # score low early stays invisible (docs/real-digits.md). 1: one rate for all, as the ModelZoo.
    scoring_lr_scale: float = 1.0


def split_validation(labels, fraction, seed):
    """Indices (train, validation): a seeded random `fraction` of all videos (not per label) is held
    out for validation, at least one when the fraction is above zero."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(11,)))
    order = rng.permutation(labels.shape[0])
    n_val = int(round(labels.shape[0] * fraction))
    if fraction > 0:
        n_val = max(1, n_val)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# What the models of one stack share: one network, the shapes of one step, one epoch count.
SHARED = ("fc", "natt", "attention", "epochs", "batch_size", "val_fraction")


def best_checkpoint(store, i):
    """Model i's best epoch so far, as a single model, in the job's state directory."""
    return store.path(f"best-{i}.ckpt")


def save_best(store, stack, i):
    params = stack.model_parameters(i)
    save_checkpoint([{"name": n, "data": ms.Tensor(a)} for n, a in params.items()], best_checkpoint(store, i))


class LossWithDropout(nn.Cell):
    """(x (N, L, F), labels (N,), dropout keep-mask (N, F*n)) -> the batch's summed cross-entropy.
    One AttentionCluster's loss: the reference that StackedLoss computes per model."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        # Summed over the batch, as in the ModelZoo scripts: their loss had reduction "none", and the
        # gradient of a vector loss is that of its sum. Under Adam the scale of the loss only sets how
        # strong the weight decay is against it: against the batch mean, their 1e-4 is 64x
        # stronger, and at paper scale fc2/natt8 and fc2/natt16 stalled at 16-18 % top-1.
        # Not the fused ops.SparseSoftmaxCrossEntropyWithLogits (0.4 ms faster per fc2/natt8 step):
        # on CPU it returns inf once a target's logit is ~90 below the largest (it takes the log
        # of an underflowed probability), which a long training can reach.
        self.loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="sum")

    def construct(self, x, y, keep):
        return self.loss(self.inner.logits(x, keep), y)


class StackedLoss(nn.Cell):
    """(x (M, N, L, F), labels (M, N), keep-masks (M, N, F*n)) -> each model's summed loss (M,).
    The gradient of the vector is that of its sum, and model i's parameters reach only loss i."""

    def __init__(self, stack):
        super().__init__()
        self.inner = stack
        self.loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="none")

    def construct(self, x, y, keep):
        m, b = x.shape[0], x.shape[1]
        logits = self.inner.logits(x, keep).reshape(m * b, N_CLASSES)
        return self.loss(logits, y.reshape(m * b)).reshape(m, b).sum(axis=1)


def make_train_step(model, lr, weight_decay, scoring_lr_scale=1.0):
    """(step(x, y, keep) -> the batch's summed loss, optimizer): Adam on one model's LossWithDropout.
    The reference that make_stacked_step equals per model (tested), and the benchmarks' baseline.

    `lr` is a float or one learning rate per step (learning_rates()); Adam counts its steps in
    its `global_step` parameter. The scoring network (model.SCORING) learns at scoring_lr_scale x lr.

    Built as nn.TrainOneStepCell: with MindSpore 2.10 on CPU, the same step written as an
    @ms.jit function around ms.value_and_grad ran 5x slower (112 ms against 20 ms for
    fc2/natt8 at batch 64, both measured under the same load).
    """
    # One parameter group, so that weight decay applies to every parameter as in the ModelZoo scripts
    # (whose shifting parameters are named w and b). Without groups nn.Adam exempts names containing
    # "beta" or "gamma" (meant for batch norm): our beta kept its size while alpha decayed.
    params = [{"params": model.trainable_params(), "weight_decay": weight_decay}]
    if scoring_lr_scale != 1.0:
        scoring = [p for p in model.trainable_params() if plain_name(p) in SCORING]
        others = [p for p in model.trainable_params() if plain_name(p) not in SCORING]
        scaled = (
            lr * scoring_lr_scale if isinstance(lr, float) else np.float32(lr * np.float32(scoring_lr_scale))
        )
        params = [
            {"params": scoring, "weight_decay": weight_decay, "lr": adam_learning_rate(scaled)},
            {"params": others, "weight_decay": weight_decay},
        ]
    optimizer = nn.Adam(params, learning_rate=adam_learning_rate(lr), weight_decay=weight_decay)
    step = nn.TrainOneStepCell(LossWithDropout(model), optimizer)
    step.set_train(True)
    return step, optimizer


class StackedAdam(nn.Cell):
    """nn.Adam's update (MindSpore's Adam kernel: bias-corrected rate, eps added to sqrt(v); weight
    decay added to the gradient) on stacked parameters, with each model's own learning rate at every
    step and its own weight decay: rates (steps, M), weight_decays (M,); the scoring network's
    parameters (model.SCORING) at scoring_lr_scales (M,) times their model's rate (None: 1). The
    kernel gives the update for a rate of 1 (AdamNoUpdateParam), which is scaled per model."""

    def __init__(
        self, params, rates, weight_decays, scoring_lr_scales=None, beta1=0.9, beta2=0.999, eps=1e-8
    ):
        super().__init__()
        self.parameters = ParameterTuple(params)
        self.moment1 = self.parameters.clone(prefix="moment1", init="zeros")
        self.moment2 = self.parameters.clone(prefix="moment2", init="zeros")
        self.global_step = Parameter(ms.Tensor([0], ms.int32), name="global_step")
        self.beta1_power = Parameter(ms.Tensor(1.0, ms.float32), name="beta1_power")
        self.beta2_power = Parameter(ms.Tensor(1.0, ms.float32), name="beta2_power")
        self.rates = ms.Tensor(np.asarray(rates, np.float32))
        self.weight_decays = ms.Tensor(np.asarray(weight_decays, np.float32))
        self.decay = bool(np.any(np.asarray(weight_decays) != 0))
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.adam = ops.AdamNoUpdateParam()
        # Each parameter's view of a per-model value: (M, 1, ...).
        self.per_model = [(p.shape[0],) + (1,) * (len(p.shape) - 1) for p in params]
        scales = np.ones(len(weight_decays)) if scoring_lr_scales is None else scoring_lr_scales
        self.scoring_lr_scales = ms.Tensor(np.asarray(scales, np.float32))
        self.scoring = [plain_name(p) in SCORING for p in params]
        self.scaled = bool(np.any(np.asarray(scales) != 1))

    def construct(self, gradients):
        rates = ops.gather(self.rates, self.global_step, 0).reshape(-1)  # (M,)
        beta1_power = self.beta1_power * self.beta1
        beta2_power = self.beta2_power * self.beta2
        done = ops.assign(self.beta1_power, beta1_power)
        done = ops.depend(done, ops.assign(self.beta2_power, beta2_power))
        done = ops.depend(done, ops.assign_add(self.global_step, ops.ones((1,), ms.int32)))
        for i in range(len(self.per_model)):
            param, gradient = self.parameters[i], gradients[i]
            if self.decay:
                gradient = gradient + self.weight_decays.reshape(self.per_model[i]) * param
            m, v = self.moment1[i], self.moment2[i]
            delta = self.adam(m, v, beta1_power, beta2_power, 1.0, self.beta1, self.beta2, self.eps, gradient)
            rate = rates * self.scoring_lr_scales if self.scaled and self.scoring[i] else rates
            done = ops.depend(done, ops.assign_add(param, delta * rate.reshape(self.per_model[i])))
        return done


def make_stacked_step(stack, rates, weight_decays, scoring_lr_scales=None):
    """(step(x, y, keep) -> each model's summed loss (M,), optimizer): StackedAdam on StackedLoss."""
    optimizer = StackedAdam(stack.trainable_params(), rates, weight_decays, scoring_lr_scales)
    step = nn.TrainOneStepCell(StackedLoss(stack), optimizer)
    step.set_train(True)
    return step, optimizer


def rank_rows(step, batch_size, rank=0, workers=1):
    """Rows of `order` that `rank` trains on at `step`: every worker takes its own `batch_size` slice of
    the step's global batch of `workers * batch_size` (the data is sharded per rank, as the ModelZoo's
    distributed runs shard their dataset; gradients are averaged across ranks)."""
    start = (step * workers + rank) * batch_size
    return slice(start, start + batch_size)


def train_model(
    features,
    labels,
    config,
    state_dir,
    checkpoint_out,
    history_out,
    *,
    rank=0,
    workers=1,
    inputs=None,
    validation=None,
):
    """Train one model (a TrainConfig): train_models with a stack of one; its summary."""
    outputs = [{"checkpoint_out": checkpoint_out, "history_out": history_out}]
    summaries = train_models(
        features,
        labels,
        [config],
        state_dir,
        outputs,
        rank=rank,
        workers=workers,
        inputs=inputs,
        validation=validation,
    )
    return None if summaries is None else summaries[0]


def train_models(
    features, labels, configs, state_dir, outputs, *, rank=0, workers=1, inputs=None, validation=None
):
    """Train the models `configs` (TrainConfigs that agree on SHARED) together on features (N, L, F)
    and labels (N,); write each model's best checkpoint (by its validation top-1) and per-epoch
    history to its entry of `outputs` ({"checkpoint_out", "history_out"}); return a summary per model.

    `validation` is (features, labels) of the validation videos; every model trains on all the
    training videos and is validated on all of these (its val_fraction must be 0). Without it, each
    model holds out its val_fraction of the training videos (its own seeded choice).

    Each model's learning rate follows its schedule (learning_rates()); a model with patience > 0
    stops once its validation top-1 has not improved for that many epochs (its record ends there;
    the job ends when every model has stopped or at the last epoch). `inputs` (digests of the
    features and the code) joins the settings that key the resumable state.

    With `workers` > 1 this runs in every rank of a data-parallel job (see distributed.py): all ranks
    draw the same batch orders and dropout masks from the same generators and each trains on its
    slice; MindSpore averages the gradients. Only rank 0 evaluates and writes files; the others
    return None.
    """
    first = configs[0]
    check_job(configs, workers)
    store = TrainState(state_dir)
    if validation is None:
        splits = [split_validation(labels, c.val_fraction, c.seed) for c in configs]
        val_features, val_labels = features, labels
    else:
        if first.val_fraction:
            raise WorkflowInputError(
                f"val_fraction is {first.val_fraction} but validation videos are given: "
                "hold out videos or give validation videos, not both"
            )
        val_features, val_labels = validation
        splits = [(np.arange(labels.shape[0]), np.arange(val_labels.shape[0])) for _ in configs]
    check_batch(first, splits[0][0].size, workers)
    train_rows = np.stack([train for train, _ in splits])  # (M, videos for training)
    val_rows = np.stack([val for _, val in splits])  # (M, videos for validation), rows of val_features
    settings = {"models": [asdict(c) for c in configs], "videos": int(labels.shape[0]), **(inputs or {})}
    if validation is not None:
        settings["validation_videos"] = int(val_labels.shape[0])
    if workers > 1:  # absent for one worker, so the state of single-worker runs stays resumable
        settings["workers"] = workers
    steps = train_rows.shape[1] // (first.batch_size * workers)
    frames, dim = features.shape[1], features.shape[2]
    models = [build_model(c.fc, c.natt, dim, frames, c.attention, c.seed) for c in configs]
    stack = StackedAttentionCluster(models)
    rates = np.stack([model_rates(c, steps) for c in configs], axis=1)  # (steps of the run, M)
    train_step, optimizer = make_stacked_step(
        stack, rates, [c.weight_decay for c in configs], [c.scoring_lr_scale for c in configs]
    )
    rngs = [generators(c.seed, RNGS) for c in configs]
    records = [{"history": [], "best_epoch": 0, "best_val_top1": -1.0, "stopped": False} for _ in configs]
    state = resume(
        store,
        settings,
        [stack, optimizer],
        rngs,
        first.epochs,
        fresh={"models": records, "train_seconds": 0.0},
        complete=lambda state: all(best_checkpoint(store, i).exists() for i in range(len(state["models"]))),
    )

    labels32 = labels.astype(np.int32)
    for epoch in range(state["epoch"] + 1, first.epochs + 1):
        for config, record in zip(configs, state["models"], strict=True):
            record["stopped"] = record["stopped"] or stalled(record, config, epoch, len(configs))
        if all(record["stopped"] for record in state["models"]):
            break
        batches = stack_batches(
            features,
            labels32,
            train_rows,
            rngs,
            steps=steps,
            batch_size=first.batch_size,
            natt=first.natt,
            rank=rank,
            workers=workers,
        )
        progress = Progress(
            f"epoch {epoch}/{first.epochs}", steps, "steps", every=30, then=(first.epochs - epoch) * steps
        )
        losses, seconds = train_epoch(
            train_step,
            batches,
            progress,
            1,
            check_loss=finite_losses(configs, state["models"], epoch),
            loss_scale=first.batch_size,  # the step returns each batch's summed loss: the per-video mean
        )
        if rank == 0:
            record_epoch(
                stack,
                val_features,
                val_labels,
                val_rows,
                configs,
                epoch=epoch,
                steps=steps,
                workers=workers,
                losses=losses,
                seconds=seconds,
                state=state,
            )
            for i, record in enumerate(state["models"]):
                if record["best_epoch"] == epoch:
                    save_best(store, stack, i)
        else:
            log.info(
                "rank %d epoch %d: %d steps, mean loss %s on this rank's shard, %.1f s",
                *(rank, epoch, steps, " ".join(f"{loss:.4f}" for loss in losses[0]), seconds),
            )
        if rank == 0:
            save_epoch(store, [stack, optimizer], state, epoch, rngs)

    if workers > 1:
        # Equal digests across ranks show that the gradients were averaged: each rank saw other data.
        log.info("rank %d of %d: final weights sha256 %s", rank, workers, weights_digest(stack))
    if rank != 0:
        return None
    summaries = []
    for i, (config, record, out) in enumerate(zip(configs, state["models"], outputs, strict=True)):
        write_outputs(best_checkpoint(store, i), record["history"], **out)
        summaries.append(
            {
                **asdict(config),
                **{key: value for key, value in settings.items() if key != "models"},
                "best_epoch": record["best_epoch"],
                "best_val_top1": record["best_val_top1"],
                "train_seconds": state["train_seconds"],
                "models_in_job": len(configs),
                "parameters": parameter_count(models[i]),
            }
        )
    return summaries


def model_rates(config, steps):
    """The learning rate of each of the run's steps for one model: (epochs * steps,) float32."""
    rates = learning_rates(config.schedule, config.lr, config.epochs, steps, config.warmup_epochs)
    return np.broadcast_to(np.float32(rates), (config.epochs * steps,))


def check_job(configs, workers):
    """One clear error before any training for models that cannot train together as asked."""
    first = configs[0]
    for config in configs[1:]:
        differ = [key for key in SHARED if getattr(config, key) != getattr(first, key)]
        if differ:
            raise WorkflowInputError(
                f"models trained together must agree on {', '.join(SHARED)}; seed {config.seed} "
                f"differs from seed {first.seed} in {', '.join(differ)}"
            )
    for config in configs:
        if config.patience and workers > 1:
            # Only rank 0 validates: the other ranks could not tell when to stop, and would wait forever.
            raise WorkflowInputError(
                f"fc{config.fc}/natt{config.natt}: patience {config.patience} needs one worker "
                f"(distributed.workers is {workers}); set the row's patience to 0 or use one worker"
            )


def check_batch(config, train_videos, workers):
    if train_videos < config.batch_size * workers:
        raise WorkflowInputError(
            f"training split has {train_videos} videos, fewer than one batch of {config.batch_size}"
            + (f" for each of {workers} workers" if workers > 1 else "")
        )


def model_label(config, count):
    """How the log names a model of a stack of `count`: nothing for a model trained alone."""
    scoring = f", scoring x{config.scoring_lr_scale:g}" if config.scoring_lr_scale != 1 else ""
    return "" if count == 1 else f"seed {config.seed}, lr {config.lr:g}{scoring}: "


def stalled(record, config, epoch, count):
    """Whether a model's validation top-1 has not improved for its patience before `epoch` (0: never)."""
    if not config.patience or epoch - record["best_epoch"] <= config.patience:
        return False
    log.info(
        "%sstopping after epoch %d: validation top-1 has not improved for %d epochs (best %.4f at epoch %d)",
        *(
            model_label(config, count),
            epoch - 1,
            config.patience,
            record["best_val_top1"],
            record["best_epoch"],
        ),
    )
    return True


def stack_batches(features, labels, train_rows, rngs, *, steps, batch_size, natt, rank, workers):
    """Each step's (features (M, B, L, F), labels (M, B), dropout keep-masks (M, B, F*natt)) for a
    stack of M models, this rank's B videos of each: every model draws its own order of its training
    videos (train_rows[i]) for the epoch and its own masks, from its own generators."""
    orders = np.stack([model["batch"].permutation(train_rows.shape[1]) for model in rngs])
    shuffled = np.take_along_axis(train_rows, orders, axis=1)  # each model's videos in its epoch's order
    own = rank_rows(0, batch_size, rank, workers)  # this rank's rows of each step's dropout masks
    width = natt * features.shape[2]
    for step in range(steps):
        rows = shuffled[:, rank_rows(step, batch_size, rank, workers)]  # (M, batch)
        keep = np.stack([dropout_keep(model["dropout"], batch_size * workers, width)[own] for model in rngs])
        yield features[rows], labels[rows], keep


def finite_losses(configs, records, epoch):
    """The check of each step's losses (M,): a NaN or an infinity of a model still training stops
    the job, naming the model, the step and its settings."""

    def check(step, losses):
        for config, record, value in zip(configs, records, losses, strict=True):
            if not record["stopped"] and not np.isfinite(value):
                raise FloatingPointError(
                    f"{model_label(config, len(configs))}epoch {epoch} step {step}: loss is {value}; "
                    f"stopping (lr {config.lr}, weight decay {config.weight_decay})"
                )

    return check


def evaluate_stack(stack, features, labels, rows, chunk=1024):
    """(top-1 (M,), top-5 (M,)) of each model of `stack` (eval mode) on its own videos rows[i]."""
    count, videos = rows.shape
    stack.set_train(False)
    hits = np.zeros((count, 2))
    step = max(64, chunk * 2 // count)
    for start in range(0, videos, step):
        part = rows[:, start : start + step]
        logits = stack(ms.from_numpy(np.ascontiguousarray(features[part]))).asnumpy()  # (M, videos, 1024)
        for i in range(count):
            hits[i] += topk_correct(logits[i], labels[part[i]])
    stack.set_train(True)
    return hits[:, 0] / max(1, videos), hits[:, 1] / max(1, videos)


def record_epoch(
    stack, val_features, val_labels, val_rows, configs, *, epoch, steps, workers, losses, seconds, state
):
    """Rank 0 after each epoch: every model's validation top-1/top-5 (on its rows of val_features),
    the epoch's log lines and history rows, and its best epoch so far (by validation top-1; the last
    epoch without validation videos)."""
    first, count = configs[0], len(configs)
    if val_rows.shape[1]:
        val_top1, val_top5 = evaluate_stack(stack, val_features, val_labels, val_rows)
    else:
        val_top1 = val_top5 = np.full(count, np.nan)
    mean_losses, last_losses = losses
    samples = steps * first.batch_size * workers * count
    # As the ModelZoo's TimeMonitor wrote it: the epoch's time, for the job's models together.
    log.info("epoch time: %.3f ms, per step time: %.3f ms", seconds * 1e3, seconds * 1e3 / max(1, steps))
    for i, (config, record) in enumerate(zip(configs, state["models"], strict=True)):
        if record["stopped"]:
            continue
        label = model_label(config, count)
        # As the ModelZoo's LossMonitor wrote it.
        log.info("%sepoch: %d step: %d, loss is %s", label, epoch, steps, float(last_losses[i]))
        log.info(
            "%sepoch %d/%d: mean loss %.4f, validation top-1 %.4f top-5 %.4f, %.0f samples/s, ETA %.0f s",
            *(label, epoch, first.epochs, mean_losses[i], val_top1[i], val_top5[i], samples / seconds),
            (first.epochs - epoch) * seconds,
        )
        row = dict(
            epoch=epoch,
            loss=float(mean_losses[i]),
            last_loss=float(last_losses[i]),
            val_top1=float(val_top1[i]),
            val_top5=float(val_top5[i]),
            seconds=seconds,
        )
        record["history"].append(row)
        if val_top1[i] > record["best_val_top1"] or not val_rows.shape[1]:
            record["best_val_top1"], record["best_epoch"] = float(val_top1[i]), epoch
    state["train_seconds"] += seconds


def write_outputs(best, history, checkpoint_out, history_out):
    """The best epoch's checkpoint and the history table (epoch, mean loss, validation top-1/top-5, seconds)."""
    with atomic_path(checkpoint_out) as tmp:
        tmp.write_bytes(Path(best).read_bytes())
    with atomic_open(history_out, "w") as handle:
        handle.write("epoch\tloss\tval_top1\tval_top5\tseconds\n")
        for row in history:
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

"""Learning-rate schedules for the sweep's models and the frame feature extractor."""

import numpy as np

from . import WorkflowInputError

SCHEDULES = ("constant", "cosine")


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

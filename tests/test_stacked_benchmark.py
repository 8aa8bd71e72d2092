"""The stacked step that benchmarks/stacked_speed.py times computes what M separate models do."""

import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from attention_clusters.devices import use_device
from attention_clusters.layers import dropout_keep
from attention_clusters.model import build_model
from attention_clusters.train import LossWithDropout, make_train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from stacked_speed import StackedAdam, StackedLoss  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cpu():
    use_device("CPU", 2)


@pytest.mark.parametrize("fc,natt", [(1, 2), (2, 4)])
def test_a_stacked_step_equals_separate_steps(fc, natt):
    rng = np.random.default_rng(0)
    count, batch, rates = 3, 16, [1e-3, 3e-3, 1e-2]
    x = rng.normal(0, 1, (count, batch, 25, 50)).astype(np.float32)
    y = rng.integers(0, 1024, (count, batch)).astype(np.int32)
    keep = np.stack([dropout_keep(rng, batch, natt * 50) for _ in range(count)])
    models = [build_model(fc, natt, seed=seed) for seed in (1, 2, 3)]
    stacked = StackedLoss(models)
    step = nn.TrainOneStepCell(stacked, StackedAdam(stacked.trainable_params(), np.float32(rates)))
    step.set_train(True)
    losses = [step(ms.Tensor(x), ms.Tensor(y), ms.Tensor(keep)).asnumpy() for _ in range(2)]
    for i, model in enumerate(models):
        alone, _ = make_train_step(model, rates[i], 0.0)
        loss_net = LossWithDropout(model)
        first = float(loss_net(ms.Tensor(x[i]), ms.Tensor(y[i]), ms.Tensor(keep[i])).asnumpy())
        for _ in range(2):
            alone(ms.Tensor(x[i]), ms.Tensor(y[i]), ms.Tensor(keep[i]))
        np.testing.assert_allclose(losses[0][i], first, rtol=1e-5)
        for param in model.trainable_params():
            if param.name.endswith("score_bias"):
                # The softmax over the frames ignores a constant added to a unit's scores, so this
                # gradient is zero but for rounding, which Adam scales up to steps of the full rate.
                continue
            np.testing.assert_allclose(
                getattr(stacked, param.name.split(".")[-1]).asnumpy()[i],
                param.asnumpy(),
                rtol=1e-4,
                atol=1e-5,
                err_msg=param.name,
            )

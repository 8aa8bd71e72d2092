"""The AttentionCluster networks: shapes, parameter counts, the fast layout against the plain one, checkpoints."""

import mindspore as ms
import numpy as np
import pytest

from attention_clusters import WorkflowInputError  # noqa: E402
from attention_clusters.checkpoints import save_model  # noqa: E402
from attention_clusters.devices import use_device  # noqa: E402
from attention_clusters.model import (
    PlainAttentionCluster,
    build_model,
    inspection_cell,
    load_model,  # noqa: E402
    parameter_count,
)


@pytest.fixture(scope="module", autouse=True)
def cpu():
    use_device("CPU", 2)


@pytest.mark.parametrize("fc,natt,count", [(1, 8, 411_048), (2, 8, 418_200), (2, 128, 6_577_920)])
def test_parameter_counts(fc, natt, count):
    assert parameter_count(build_model(fc, natt)) == count


@pytest.mark.parametrize("fc,natt", [(1, 1), (1, 4), (2, 16)])
def test_shapes_norm_and_weights(fc, natt):
    model = build_model(fc, natt, seed=3)
    model.set_train(False)
    x = ms.Tensor(np.random.default_rng(1).normal(0, 1, (6, 25, 50)).astype(np.float32))
    assert model(x).shape == (6, 1024)
    weights, units, logits = (t.asnumpy() for t in inspection_cell(model)(x))
    assert units.shape == (6, natt, 50) and logits.shape == (6, 1024)
    np.testing.assert_allclose(np.linalg.norm(units.reshape(6, -1), axis=1), 1.0, atol=1e-5)
    assert weights.shape == (6, 25, natt)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    # alpha and beta start at different values per unit (the ModelZoo's defect gave one constant).
    if natt > 1:
        assert np.unique(model.alpha.asnumpy()).size == natt


def test_zero_unit_output_does_not_divide_by_zero():
    model = build_model(1, 2)
    model.alpha.set_data(ms.Tensor(np.zeros(2, np.float32)))
    model.beta.set_data(ms.Tensor(np.zeros(2, np.float32)))
    out = model(ms.Tensor(np.ones((2, 25, 50), np.float32))).asnumpy()
    assert np.isfinite(out).all()


class PlainAttentionClusterLoss(ms.nn.Cell):
    """The summed training loss of the plain formulation (model.PlainAttentionCluster) on the
    parameters of `model`: autodiff everywhere, the reference for the hand-written backward passes."""

    def __init__(self, model):
        super().__init__()
        self.plain = PlainAttentionCluster(model)
        self.loss = ms.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="sum")

    def construct(self, x, y, keep):
        return self.loss(self.plain(x, keep), y)


@pytest.mark.parametrize("fc,natt", [(1, 4), (2, 8)])
def test_hand_written_backward_equals_autodiff_of_the_plain_network(fc, natt):
    from attention_clusters.train import make_train_step

    model = build_model(fc, natt, seed=7)
    rng = np.random.default_rng(2)
    # A trained network's scores: the initial zeros would give fc2's hidden layer no gradient.
    model.score_weight.set_data(
        ms.Tensor(rng.uniform(-0.3, 0.3, model.score_weight.shape).astype(np.float32))
    )
    step, _ = make_train_step(model, 1e-3, 1e-4)
    x = ms.Tensor(rng.normal(0, 1, (32, 25, 50)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 1024, 32).astype(np.int32))
    keep = ms.Tensor((rng.random((32, natt * 50)) > 0.5).astype(np.float32) * 2)
    params = model.trainable_params()
    ours = ms.nn.ForwardValueAndGrad(step.network, weights=params, get_by_list=True)
    theirs = ms.nn.ForwardValueAndGrad(PlainAttentionClusterLoss(model), weights=params, get_by_list=True)
    our_loss, our_grads = ours(x, y, keep)
    their_loss, their_grads = theirs(x, y, keep)
    np.testing.assert_allclose(our_loss.asnumpy(), their_loss.asnumpy(), rtol=1e-5)
    scale = max(np.abs(g.asnumpy()).max() for g in their_grads)
    for param, our_grad, their_grad in zip(params, our_grads, their_grads, strict=True):
        expected = their_grad.asnumpy()
        if param.name.endswith("score_bias"):
            # A constant added to a unit's scores on every frame leaves its softmax unchanged: this
            # gradient is zero but for rounding, in both.
            assert np.abs(expected).max() < 1e-6 * scale
        else:
            assert np.abs(expected).max() > 1e-3 * scale, param.name
        np.testing.assert_allclose(
            our_grad.asnumpy(), expected, rtol=1e-4, atol=1e-6 * scale, err_msg=param.name
        )


def test_a_checkpoint_of_other_shapes_is_one_error(tmp_path):
    save_model(build_model(1, 4), tmp_path / "natt4.ckpt")
    with pytest.raises(
        WorkflowInputError,
        match=r"natt4\.ckpt: parameters of other shapes than fc=1 natt=8 "
        r"attention=shift needs: score_weight \(50, 4\) \(expected \(50, 8\)\)",
    ):
        load_model(tmp_path / "natt4.ckpt", 1, 8)


def test_a_float64_checkpoint_is_one_error_naming_the_file(tmp_path):
    import mindspore as ms

    params = [
        {"name": p.name, "data": ms.Tensor(p.asnumpy().astype(np.float64))}
        for p in build_model(1, 4).get_parameters()
    ]
    ms.save_checkpoint(params, str(tmp_path / "f64.ckpt"))
    with pytest.raises(
        WorkflowInputError,
        match=r"f64\.ckpt: parameters of another type than fc=1 natt=4 attention=shift needs: "
        r"\w+ Float64 \(expected Float32\)",
    ):
        load_model(tmp_path / "f64.ckpt", 1, 4)

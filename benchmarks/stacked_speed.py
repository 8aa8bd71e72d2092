"""Do M models trained by one stacked step train more samples/s than M separate steps?

    python benchmarks/stacked_speed.py                     # fc1/natt1, fc2/natt8, fc2/natt16, fc2/natt128
    python benchmarks/stacked_speed.py --models 1:1:128 --stacks 3 --seconds 5 --rounds 5

For each model (fc:natt:batch) it times, on one MindSpore kernel thread (the workflow's
training jobs run with one each):

- `separate`: the workflow's own step (train.make_train_step) on one model, batch B;
- `stacked M`: the workflow's stacked step (train.make_stacked_step on a StackedAttentionCluster):
  M models of the same (fc, natt), each with its own batch of B videos, dropout masks and learning
  rate, updated by one step;
- `one model, batch M*B`: the workflow's step on one model with M times the batch. A stacked step
  does at least this work (every product, the loss and the update over M*B videos) with at least
  as many kernels, so its speed bounds what any stacking can reach on this backend.

It prints samples/s of each and the ratio to the separate steps. Measurements alternate per
round, so each sees the same phases of this VM's drifting speed; the median round is given.
`--dtypes` also times the classifier's matrix product in float32, bfloat16 and float16.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import mindspore as ms  # noqa: E402
from mindspore import Tensor, nn, ops  # noqa: E402

from attention_clusters.constants import N_CLASSES  # noqa: E402
from attention_clusters.layers import dropout_keep  # noqa: E402
from attention_clusters.model import StackedAttentionCluster, build_model  # noqa: E402
from attention_clusters.train import make_stacked_step, make_train_step  # noqa: E402


def data(rng):
    features = rng.normal(0, 1, (8192, 25, 50)).astype(np.float32)
    return features, rng.integers(0, N_CLASSES, 8192).astype(np.int32)


def single_stepper(fc, natt, batch, rng, features, labels):
    step, _ = make_train_step(build_model(fc, natt), 1e-3, 0.0)

    def one():
        rows = rng.integers(0, labels.size, batch)
        keep = dropout_keep(rng, batch, natt * 50)
        step(ms.from_numpy(features[rows]), ms.from_numpy(labels[rows]), ms.from_numpy(keep)).asnumpy()

    return one


def stacked_stepper(fc, natt, batch, count, rng, features, labels):
    stack = StackedAttentionCluster([build_model(fc, natt, seed=seed) for seed in range(1, count + 1)])
    rates = np.tile(np.geomspace(3e-4, 3e-3, count).astype(np.float32), (100_000, 1))  # (steps, M)
    step, _ = make_stacked_step(stack, rates, np.zeros(count))

    def one():
        rows = rng.integers(0, labels.size, (count, batch))  # each model its own batch
        keep = np.stack([dropout_keep(rng, batch, natt * 50) for _ in range(count)])
        step(ms.from_numpy(features[rows]), ms.from_numpy(labels[rows]), ms.from_numpy(keep)).asnumpy()

    return one


def timed(one, seconds):
    """Seconds per step over at least `seconds` (and 5 steps)."""
    steps, start = 0, time.perf_counter()
    while steps < 5 or time.perf_counter() - start < seconds:
        one()
        steps += 1
    return (time.perf_counter() - start) / steps


def compare(fc, natt, batch, stacks, seconds, rounds):
    rng = np.random.default_rng(0)
    features, labels = data(rng)
    steppers = {("separate", 1): single_stepper(fc, natt, batch, rng, features, labels)}
    for count in stacks:
        steppers[("stacked", count)] = stacked_stepper(fc, natt, batch, count, rng, features, labels)
        steppers[("one model, batch M*B", count)] = single_stepper(
            fc, natt, batch * count, rng, features, labels
        )
    for one in steppers.values():  # compile and warm up
        for _ in range(5):
            one()
    times = {key: [] for key in steppers}
    for _ in range(rounds):
        for key, one in steppers.items():
            times[key].append(timed(one, seconds))
    separate = statistics.median(times[("separate", 1)])
    print(f"fc{fc}/natt{natt}, batch {batch} per model:", flush=True)
    print(f"  separate steps        {batch / separate:8,.0f} samples/s ({separate * 1e3:.2f} ms/step)")
    for count in stacks:
        for kind in ("stacked", "one model, batch M*B"):
            median = statistics.median(times[(kind, count)])
            label = f"{kind} M={count}" if kind == "stacked" else f"{kind} (M={count})"
            print(
                f"  {label:<30} {batch * count / median:8,.0f} samples/s ({median * 1e3:.2f} ms/step), "
                f"{separate * count / median:.2f}x the separate steps",
                flush=True,
            )


def dtypes(rounds=20):
    """The classifier's product (batch x F*n by 1024 x F*n) in each float type, or why it cannot run."""

    class Product(nn.Cell):
        def __init__(self):
            super().__init__()
            self.mm = ops.MatMul(transpose_b=True)

        def construct(self, a, b):
            return self.mm(a, b)

    rng = np.random.default_rng(0)
    for m, k in ((384, 50), (256, 6400)):
        a32 = Tensor(rng.normal(0, 1, (m, k)).astype(np.float32))
        b32 = Tensor(rng.normal(0, 1, (N_CLASSES, k)).astype(np.float32))
        for dtype in (ms.float32, ms.bfloat16, ms.float16):
            a, b, product = a32.astype(dtype), b32.astype(dtype), Product()
            try:
                product(a, b).astype(ms.float32).asnumpy()
                start = time.perf_counter()
                for _ in range(rounds):
                    out = product(a, b)
                out.astype(ms.float32).asnumpy()
                seconds = (time.perf_counter() - start) / rounds
                result = f"{seconds * 1e3:.2f} ms, {2 * m * k * N_CLASSES / seconds / 1e9:.0f} GFLOP/s"
            except (RuntimeError, TypeError, ValueError) as err:
                text = " ".join(str(err).split())
                start = text.find("Select CPU operator")
                result = "cannot run: " + (
                    text[start : text.find("!", start) + 1] if start >= 0 else text[:120]
                )
            print(f"  MatMul {m}x{k} by {k}x{N_CLASSES} in {dtype}: {result}", flush=True)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["1:1:128", "2:8:128", "2:16:128", "2:128:256"], help="fc:natt:batch"
    )
    parser.add_argument("--stacks", nargs="+", type=int, default=[3, 8], help="models per stacked step (M)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dtypes", action="store_true", help="also time the classifier's product per float type"
    )
    args = parser.parse_args()
    from attention_clusters.devices import use_device

    use_device("CPU", 1)
    print("Stacked training steps against separate ones, 1 kernel thread", flush=True)
    for spec in args.models:
        fc, natt, batch = map(int, spec.split(":"))
        compare(fc, natt, batch, args.stacks, args.seconds, args.rounds)
    if args.dtypes:
        dtypes()


if __name__ == "__main__":
    main()

"""AttentionCluster training speed on this machine: ms/step and samples/s at batch 64.

    python benchmarks/train_speed.py                       # fc2/natt8 and fc2/natt128
    python benchmarks/train_speed.py --models 1:8 2:8 2:128 --steps 400 --rounds 3

The step is the workflow's own (attention_clusters.train): Adam, softmax cross-entropy,
dropout masks from NumPy, batches from arrays in memory. A full epoch of the paper's
training set (102,400 videos, 10% held out for validation) is 1,440 steps; the ModelZoo's
1,600-step epoch took 10.2 s on an Ascend 910 (6.35 ms/step).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def make_stepper(fc, natt):
    """A function running one workflow training step of fc/natt on a random batch."""
    import mindspore as ms

    from attention_clusters.layers import dropout_keep
    from attention_clusters.model import build_model
    from attention_clusters.train import make_train_step

    model = build_model(fc, natt)
    train_step, _ = make_train_step(model, 5e-4, 1e-4)
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (8192, 25, 50)).astype(np.float32)
    labels = rng.integers(0, 1024, 8192).astype(np.int32)
    width = natt * 50

    def one_step():
        batch = rng.integers(0, 8192, 64)
        keep = dropout_keep(rng, 64, width)
        x, y = ms.from_numpy(features[batch]), ms.from_numpy(labels[batch])
        return float(train_step(x, y, ms.from_numpy(keep)).asnumpy())

    for _ in range(20):  # compile and warm up
        one_step()
    return one_step


def timed(one_step, steps):
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    return 1e3 * (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["2:8", "2:128"], help="fc:natt pairs")
    parser.add_argument("--steps", type=int, default=200, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    from attention_clusters.devices import use_device

    use_device("CPU", args.threads)
    targets = {(2, 8): 4.0, (2, 128): 30.0}
    print(f"AttentionCluster training, batch 64, {args.threads} threads")
    models = [tuple(map(int, pair.split(":"))) for pair in args.models]
    steppers = {model: make_stepper(*model) for model in models}
    # Rounds alternate between the models: this VM's speed drifts by tens of percent over
    # minutes, so each model gets the same mix of fast and slow phases; the spread is printed.
    times = {model: [] for model in models}
    for _ in range(args.rounds):
        for model in models:
            times[model].append(timed(steppers[model], args.steps))
    for fc, natt in models:
        ms_per_step = sorted(times[(fc, natt)])
        median = ms_per_step[len(ms_per_step) // 2]
        target = targets.get((fc, natt))
        note = f"; target <= {target:g} ms/step" if target else ""
        print(
            f"fc{fc}/natt{natt}: {ms_per_step[0]:.2f} / {median:.2f} / {ms_per_step[-1]:.2f} ms/step "
            f"(best / median / worst of {args.rounds} rounds of {args.steps} steps), "
            f"{64e3 / median:,.0f} samples/s and {1600 * median / 1e3:.1f} s per 1,600-step epoch at the "
            f"median{note}",
            flush=True,
        )


if __name__ == "__main__":
    main()

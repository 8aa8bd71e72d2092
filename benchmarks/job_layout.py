"""Two 1-thread training jobs at once, or one 2-thread job? Samples/s of both layouts on this machine.

    python benchmarks/job_layout.py                              # fc1/natt1, fc2/natt8, fc2/natt128
    python benchmarks/job_layout.py --models 2:128 --batches 64 256 --seconds 20

For each model and batch size it times the workflow's own training step (train.make_train_step)
in a process with 2 MindSpore kernel threads, then in two processes with 1 thread each running
at the same time, and prints the total samples/s of each layout. The layouts alternate per model,
so both see the same phases of this VM's drifting speed.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def worker(fc, natt, batch, threads, seconds):
    """Train steps on random Flash-MNIST-shaped batches for `seconds`; print samples/s as JSON."""
    sys.path.insert(0, str(SRC))
    import mindspore as ms

    from attention_clusters.devices import use_device
    from attention_clusters.layers import dropout_keep
    from attention_clusters.model import build_model
    from attention_clusters.train import make_train_step

    use_device("CPU", threads)
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (8192, 25, 50)).astype(np.float32)
    labels = rng.integers(0, 1024, 8192).astype(np.int32)
    step, _ = make_train_step(build_model(fc, natt), 1e-3, 0.0)

    def one():
        rows = rng.integers(0, 8192, batch)
        keep = dropout_keep(rng, batch, natt * 50)
        step(ms.from_numpy(features[rows]), ms.from_numpy(labels[rows]), ms.from_numpy(keep)).asnumpy()

    for _ in range(10):  # compile and warm up
        one()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        one()
        steps += 1
    print(json.dumps({"samples_per_second": steps * batch / (time.perf_counter() - start)}))


def run_layout(fc, natt, batch, threads, processes, seconds):
    command = [sys.executable, __file__, "--worker", f"{fc}:{natt}:{batch}:{threads}:{seconds}"]
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(processes)
    ]
    rates = [
        json.loads(proc.communicate()[0].strip().splitlines()[-1])["samples_per_second"] for proc in procs
    ]
    return sum(rates)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["1:1", "2:8", "2:128"], help="fc:natt pairs")
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--seconds", type=float, default=15.0, help="timed seconds per process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fc, natt, batch, threads, seconds = args.worker.split(":")
        worker(int(fc), int(natt), int(batch), int(threads), float(seconds))
        return
    print(
        "AttentionCluster training steps, total samples/s on this machine: one 2-thread process | "
        "two 1-thread processes at once"
    )
    for pair in args.models:
        fc, natt = map(int, pair.split(":"))
        for batch in args.batches:
            one = run_layout(fc, natt, batch, 2, 1, args.seconds)
            two = run_layout(fc, natt, batch, 1, 2, args.seconds)
            print(
                f"fc{fc}/natt{natt} batch {batch}: {one:,.0f} | {two:,.0f} samples/s "
                f"(two 1-thread jobs: {two / one:.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Data-parallel training speed: samples/s with 1 worker and with 2 msrun workers on this machine.

    python benchmarks/distributed_speed.py                    # fc2/natt8 and fc2/natt128
    python benchmarks/distributed_speed.py --models 2:8 --videos 16384 --epochs 3

Both runs are the workflow's own train_model step: one worker trains in its process with all
threads (distributed.workers: 1); N workers are msrun ranks sharing the threads (threads / N each),
each with a batch of 64, gradients averaged, so a step trains N x 64 videos. The rate is
videos trained per second of epoch time, over the epochs after the first (which compiles).
On a CPU the workers share one machine's cores; on GPU or Ascend nodes each has a device.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# A fresh process per run: MindSpore takes its thread count once per process.
RUN_STEP = """
import json, sys
from attention_clusters.steps import train_model
train_model(**json.load(open(sys.argv[1])))
"""


def write_features(path, videos):
    from attention_clusters.features import write_features as write

    rng = np.random.default_rng(0)
    feats = rng.normal(0, 1, (videos, 25, 50)).astype(np.float32)
    labels = rng.integers(0, 1024, videos)
    write(path, [(feats, labels, np.arange(videos))])


def rate(history, workers, batch_size, train_videos):
    """Videos per second over the epochs after the first."""
    rows = [line.split("\t") for line in history.read_text().splitlines()[1:]]
    seconds = sum(float(row[4]) for row in rows[1:])
    steps = train_videos // (workers * batch_size)
    return steps * workers * batch_size * (len(rows) - 1) / seconds, 1e3 * seconds / ((len(rows) - 1) * steps)


def run(workdir, features, fc, natt, workers, epochs, threads):
    """The workflow's train_model step (msrun when workers > 1); returns the history and wall seconds."""
    out = workdir / f"fc{fc}_natt{natt}_w{workers}"
    out.mkdir(parents=True)
    job = dict(
        fc=fc,
        natt=natt,
        attention="shift",
        epochs=epochs,
        lr=5e-4,
        weight_decay=1e-4,
        batch_size=64,
        val_fraction=0.1,
        seed=1,
    )
    spec = dict(
        features=str(features),
        sweep_device="CPU",
        device="CPU",
        threads=threads,
        job=job,
        state_dir=str(out / "state"),
        checkpoint_out=str(out / "model.ckpt"),
        history_out=str(out / "history.tsv"),
        summary_out=str(out / "train.json"),
        workers=workers,
        worker_logs=str(out / "logs"),
    )
    (out / "spec.json").write_text(json.dumps(spec))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", RUN_STEP, str(out / "spec.json")],
        check=True,
        env=dict(os.environ, GLOG_v="3"),
        stderr=subprocess.DEVNULL,
    )
    return out / "history.tsv", time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["2:8", "2:128"], help="fc:natt pairs")
    parser.add_argument("--videos", type=int, default=16384, help="training videos (10%% are held out)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    train_videos = args.videos - int(round(args.videos * 0.1))
    print(
        f"data-parallel training on CPU: {args.threads} threads in all, batch 64 per worker, "
        f"{train_videos} training videos, {args.epochs} epochs (the first is not counted)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        features = workdir / "feature_train.pkl"
        write_features(features, args.videos)
        for pair in args.models:
            fc, natt = map(int, pair.split(":"))
            for workers in (1, args.workers):
                history, wall = run(workdir, features, fc, natt, workers, args.epochs, args.threads)
                samples, ms_step = rate(history, workers, 64, train_videos)
                print(
                    f"fc{fc}/natt{natt}, {workers} worker(s): {samples:,.0f} samples/s, {ms_step:.1f} ms per "
                    f"step of {workers * 64} videos; job {wall:.1f} s wall with start-up",
                    flush=True,
                )


if __name__ == "__main__":
    main()

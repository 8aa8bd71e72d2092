"""Inference speed of exported MINDIR models on this machine (the 310 chain's `infer` step).

    python benchmarks/inference_speed.py                    # fc2/natt8 and fc2/natt128, batch 1024
    python benchmarks/inference_speed.py --models 1:8 --batch-size 10240

Runs the workflow's own export and infer functions on 10,240 random test videos (the
size of the paper's test set); weights are freshly initialised, which does not change
the speed.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["2:8", "2:128"], help="fc:natt pairs")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--videos", type=int, default=10240)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    from attention_clusters.checkpoints import save_model
    from attention_clusters.devices import use_device
    from attention_clusters.inference import export_mindir, infer
    from attention_clusters.model import build_model

    use_device("CPU", args.threads)
    print(f"MINDIR inference on CPU, {args.videos:,} videos, batch {args.batch_size}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.random.default_rng(0).normal(0, 1, (args.videos, 25, 50)).astype("<f4").tofile(
            tmp / "features.bin"
        )
        for pair in args.models:
            fc, natt = map(int, pair.split(":"))
            save_model(build_model(fc, natt), tmp / "model.ckpt")
            export_mindir(
                tmp / "model.ckpt", fc, natt, "shift", args.batch_size, 25, 50, tmp / "model.mindir"
            )
            infer(
                tmp / "model.mindir",
                tmp / "features.bin",
                args.batch_size,
                25,
                50,
                tmp / "logits.bin",
                tmp / "latency.json",
            )
            timing = json.loads((tmp / "latency.json").read_text())
            print(
                f"fc{fc}/natt{natt}: {timing['latency_ms_per_batch']:.1f} ms per batch of {args.batch_size} "
                f"({timing['latency_ms_per_video'] * 1e3:.1f} us per video), {timing['videos_per_second']:,.0f} "
                f"videos/s; first batch (with graph compilation) {timing['first_batch_ms']:.0f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()

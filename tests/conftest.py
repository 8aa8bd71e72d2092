import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from attention_clusters.flash_mnist import video_plan

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture(scope="session")
def tiny_mnist():
    """A small synthetic MNIST (train 400, test 100) shared by the unit tests."""
    from attention_clusters.synthetic_mnist import make_split

    train = make_split(400, 7, 0)
    test = make_split(100, 7, 1)
    return {
        "train_images": train[0],
        "train_labels": train[1],
        "test_images": test[0],
        "test_labels": test[1],
    }


def make_workdir(tmp_path, preset_overrides=None):
    """A fresh copy of the workflow and its config in tmp_path, as a user's checkout would be."""
    for name in ("workflow", "config"):
        shutil.copytree(ROOT / name, tmp_path / name)
    if preset_overrides:
        (tmp_path / "config" / "test.yaml").write_text(preset_overrides)
    return tmp_path


@functools.cache
def _scontrol_without_slurm():
    """A directory whose `scontrol` fails at once. Snakemake imports every installed executor plugin
    on each start, and the Slurm plugin then runs `scontrol show config` (timeout 10 s): where a
    Slurm client is configured but no controller runs (as here once the cluster tests stopped
    theirs), every `snakemake` call waited about 9 s for it. First on PATH of the runs that do not
    use Slurm, it answers as a machine without a controller does, at once."""
    directory = Path(tempfile.mkdtemp(prefix="no-slurm-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    scontrol = directory / "scontrol"
    scontrol.write_text("#!/bin/sh\necho 'no Slurm controller in this test' >&2\nexit 1\n")
    scontrol.chmod(0o755)
    return directory


def snakemake_env(env=None, slurm=False):
    """The environment of a test's `snakemake`: MindSpore's C++ warnings off, `env` added, and
    unless `slurm` (the cluster tests) the `scontrol` of _scontrol_without_slurm first on PATH."""
    env = dict(os.environ, **(env or {}))
    env.setdefault("GLOG_v", "3")  # MindSpore's C++ warnings would drown the logs
    if not slurm:
        env["PATH"] = os.pathsep.join([str(_scontrol_without_slurm()), env.get("PATH", "")])
    return env


def run_snakemake(workdir, *args, check=True, timeout=900, env=None, slurm=False):
    """Run snakemake in `workdir`; `env` adds to (or overrides) the environment; `slurm`: it submits
    to the local Slurm (the real `scontrol`)."""
    proc = subprocess.run(
        [SNAKEMAKE, *args],
        cwd=workdir,
        env=snakemake_env(env, slurm),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def labels_from_bits(frame_digits):
    """The label each video's frame digits imply: the bit set of the digits shown."""
    labels = np.zeros(frame_digits.shape[0], np.int64)
    for digit in range(10):
        labels |= (frame_digits == digit).any(axis=1).astype(np.int64) << digit
    return labels


def synthetic_flash_features(k, seed=0):
    """Flash-MNIST-shaped features without the CNN: a digit frame is its digit's prototype plus noise."""
    prototypes = np.random.default_rng(1234).normal(0, 1, (10, 50)).astype(np.float32)  # same in every set
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(1024), k)
    feats = rng.normal(0, 0.3, (labels.size, 25, 50)).astype(np.float32)
    for label in range(1024):
        plan = video_plan(label, k, 25, 1, 2, rng)
        shown = plan >= 0
        block = feats[label * k : (label + 1) * k]
        block[shown] += prototypes[plan[shown]]
    return feats, labels

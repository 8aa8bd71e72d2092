"""`snakemake --profile cluster` on a real one-node Slurm (cluster/local-slurm.sh), tiny preset."""

import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import ROOT, make_workdir, run_snakemake

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "cluster/local-slurm.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("starting Slurm's daemons needs root")
    state = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_LOCAL_DIR=str(state))
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120)
        message = f"could not start a local Slurm: {started.stdout[-1000:]} {started.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must run the cluster test, not skip it
        pytest.skip(message)
    yield state
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=120, check=True)


def cluster_workdir(tmp_path, overrides):
    workdir = make_workdir(tmp_path, overrides)
    shutil.copytree(ROOT / "cluster", workdir / "cluster")
    return workdir


def run_tiny_on_cluster(workdir, **options):
    """`snakemake --profile cluster` with the tiny preset and the test's config/test.yaml."""
    return run_snakemake(
        workdir,
        "--profile",
        "cluster",
        "--configfile",
        "config/tiny.yaml",
        "config/test.yaml",
        timeout=1500,
        slurm=True,
        **options,
    )


def slurm_jobs():
    """{job id: (state, partition, generic resources, comment)} of every job Slurm still remembers
    (MinJobAge 300 s); the Slurm executor writes `rule_<rule>_wildcards_<...>` into the comment."""
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%T|%P|%b|%k"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split("|")[0]: tuple(line.split("|")[1:]) for line in out.split()}


@pytest.fixture(scope="module")
def cluster_run(slurm, tmp_path_factory):
    """The tiny preset through Slurm on CPU and (as CPU) Ascend, training data-parallel on 2 msrun
    workers: (its directory, {Slurm job id: (state, partition, gres, comment)} of its jobs)."""
    before = set(slurm_jobs())
    overrides = (
        "sweep:\n  devices: [CPU, Ascend]\ncluster:\n  run_device_as: {Ascend: CPU}\n"
        "distributed:\n  workers: 2\n"
    )
    workdir = cluster_workdir(tmp_path_factory.mktemp("cluster"), overrides)
    run_tiny_on_cluster(workdir)
    return workdir, {job: info for job, info in slurm_jobs().items() if job not in before}


def test_tiny_preset_runs_through_slurm(cluster_run, capsys):
    workdir, jobs = cluster_run
    assert (workdir / "results/report.md").exists()
    with capsys.disabled():
        print("\nSlurm jobs of the run (id: state, partition, gres):")
        for job, (state, partition, gres, _) in sorted(jobs.items(), key=lambda item: int(item[0])):
            print(f"  {job}: {state}, {partition}, {gres}")
    assert jobs and all(state == "COMPLETED" for state, *_ in jobs.values())
    assert {partition for _, partition, *_ in jobs.values()} == {"cpu", "ascend"}
    # Two NPUs for each data-parallel Ascend training job, one for the other Ascend jobs.
    ascend = [(gres, name) for _, partition, gres, name in jobs.values() if partition == "ascend"]
    assert ascend and all(gres.endswith("npu:2") == ("train_model" in name) for gres, name in ascend), ascend
    # Inside the jobs: their Slurm job id and partition, by device.
    ascend_log = (workdir / "logs/train_model/Ascend/shift/fc1_natt2.log").read_text()
    cpu_log = (workdir / "logs/train_model/CPU/shift/fc1_natt2.log").read_text()
    ascend_job = re.search(r"slurm job (\d+) on partition ascend", ascend_log)
    cpu_job = re.search(r"slurm job (\d+) on partition cpu", cpu_log)
    assert ascend_job and cpu_job and ascend_job.group(1) in jobs and cpu_job.group(1) in jobs
    # Downloads-or-synthesis and the report ran on the submit host, not in a job.
    assert "slurm job" not in (workdir / "logs/report.log").read_text()
    # The Ascend models ran on the CPU here (no NPU), and say so; msrun ran their 2 ranks inside the job.
    summary = json.loads((workdir / "results/sweep/Ascend/shift/fc1_natt2/seed1/train.json").read_text())
    assert summary["ran_on"] == "CPU" and summary["workers"] == 2
    assert "rank 0 of 2" in ascend_log
    assert (
        "final weights sha256"
        in (workdir / "logs/train_model/Ascend/shift/fc1_natt2.workers/worker_1.log").read_text()
    )


def test_failing_cluster_job_fails_the_run(cluster_run, tmp_path):
    # The finished run with GPU models added, which are sent to the cpu partition without a GPU
    # request, so they start and then fail (the installed MindSpore has no GPU backend). Its data
    # stages are the finished run's: only the GPU models' jobs are planned.
    workdir = tmp_path / "run"
    shutil.copytree(cluster_run[0], workdir, symlinks=True)
    (workdir / "config/test.yaml").write_text(
        "sweep:\n  devices: [GPU]\ncluster:\n  partitions: {CPU: cpu, GPU: cpu, Ascend: ascend}\n"
        "  accelerators: {CPU: '', GPU: '', Ascend: npu}\n"
    )
    proc = run_tiny_on_cluster(workdir, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule train_model" in out and "logs/train_model/GPU/shift/fc1_natt2.log" in out
    assert "rule extract_features" not in out and "rule train_extractor" not in out
    log = (workdir / "logs/train_model/GPU/shift/fc1_natt2.log").read_text()
    assert "device 'GPU' was asked for" in log and "slurm job" in log
    assert not list((workdir / "results/sweep/GPU").rglob("model.ckpt"))

"""Pinning a job to CPUs no other job holds (`pinning.pin_to_free_cores`), in child processes:
the test process itself must stay free to use every CPU."""

import ast
import fcntl
import os
import subprocess
import sys

import pytest

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
pytestmark = pytest.mark.skipif(len(CPUS) < 2, reason="needs CPU affinity and at least 2 CPUs")

# Pins itself, prints what it got and its CPUs, and holds them until its stdin closes.
JOB = """
import os, sys
from attention_clusters.pinning import pin_to_free_cores
claimed = pin_to_free_cores(int(sys.argv[1]), lock_dir=sys.argv[2])
print(claimed, sorted(os.sched_getaffinity(0)), flush=True)
sys.stdin.read()
"""


def start_job(threads, lock_dir):
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, str(threads), str(lock_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    claimed, affinity = job.stdout.readline().rsplit(" [", 1)
    return job, ast.literal_eval(claimed), [int(cpu) for cpu in affinity.strip(" ]\n").split(",") if cpu]


def stop(*jobs):
    for job in jobs:
        job.stdin.close()
        job.wait(timeout=60)


def test_jobs_get_cpus_of_their_own_and_free_them_at_exit(tmp_path):
    first, claimed_first, affinity_first = start_job(1, tmp_path)
    second, claimed_second, affinity_second = start_job(1, tmp_path)
    assert claimed_first == affinity_first == [CPUS[0]]
    assert claimed_second == affinity_second == [CPUS[1]]
    stop(first)
    third, claimed_third, _ = start_job(1, tmp_path)  # the first job's CPU is free again
    assert claimed_third == [CPUS[0]]
    stop(second, third)


def test_pinned_even_when_cpus_are_taken_not_when_the_job_may_use_them_all(tmp_path):
    held = []
    for cpu in CPUS:  # another job holds every CPU
        handle = os.open(tmp_path / f"cpu{cpu}", os.O_RDWR | os.O_CREAT)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(handle)
    job, claimed, affinity = start_job(1, tmp_path)  # one CPU all the same: the same arithmetic
    assert len(claimed) == 1 and affinity == claimed and claimed[0] in CPUS
    stop(job)
    for handle in held:
        os.close(handle)
    job, claimed, affinity = start_job(len(CPUS), tmp_path)
    assert claimed is None and affinity == CPUS
    stop(job)


def test_lock_files_are_never_created_through_a_planted_link(tmp_path):
    target = tmp_path / "victim"
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    for cpu in CPUS:
        (locks / f"cpu{cpu}").symlink_to(target)
    job, claimed, affinity = start_job(1, locks)  # no CPU claimed: pinned all the same, by process id
    assert len(claimed) == 1 and affinity == claimed and not target.exists()
    stop(job)
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    job, claimed, _ = start_job(1, linked)  # a lock directory that is a link is not used at all
    assert len(claimed) == 1 and not list((tmp_path / "elsewhere").iterdir())
    stop(job)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    job, claimed, _ = start_job(1, shared)  # nor one that others may write to
    assert len(claimed) == 1 and not list(shared.iterdir())
    stop(job)

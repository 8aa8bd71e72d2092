"""CPU pinning of the workflow's jobs: each job with fewer threads than the CPUs it may use gets
CPUs of its own, claimed through lock files in a directory private to the user
(workflow/scripts/runner.py applies it to every job)."""

import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("attention_clusters")


def private_directory(path):
    """`path` as a directory that only this user can write to (created with mode 0700), or None,
    with a warning, when something else is there: a symbolic link, another user's directory, or
    one that others may write to (in a shared /tmp, anyone can create the name first)."""
    path = Path(path)
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as err:
        log.warning("cannot create the CPU lock directory %s (%s): CPUs are not claimed", path, err)
        return None
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        log.warning(
            "CPU lock directory %s is not a directory of this user that only it can write to "
            "(a symbolic link, another user's, or group/world-writable): CPUs are not claimed; remove it",
            path,
        )
        return None
    return path


# The lock files behind pin_to_free_cores, held open (and so locked) until the process ends.
_held_cores = []


def pin_to_free_cores(threads, lock_dir=None):
    """Bind this process (its threads now and those it starts) to `threads` CPUs, ones that no
    other job on this machine holds where there are enough, and hold those until the process
    ends; return the CPUs. None, and nothing changed, when the process may use no more than
    `threads` CPUs anyway (e.g. a Slurm job's cgroup) or on a system without CPU affinity.

    Why: MindSpore's CPU runtime hands every kernel between its threads (the caller, an actor
    thread, a kernel thread). Two 1-thread training jobs on 2 cores, left to the kernel's
    scheduler, share both cores, and each hand-over of the job with small kernels waits behind
    the other job's long ones: fc1/natt8 trained at 2,757 samples/s beside fc1/natt128
    (300,000 context switches/s), and at 8,900 once each job had a core of its own (4,000/s),
    while fc1/natt128 went from 1,085 to 1,196 (docs/real-digits.md).

    Why always `threads` CPUs, even when none is free: MindSpore's arithmetic in a training job
    depends on the CPUs the process may use (fc2/natt4's first-epoch loss 6.8168 unpinned on 2
    CPUs, 6.8169 on one), so a job's results must not depend on what else runs beside it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    import fcntl

    allowed = sorted(os.sched_getaffinity(0))
    if threads >= len(allowed):
        return None
    lock_dir = private_directory(
        lock_dir or Path(tempfile.gettempdir()) / f"attention-clusters-cores-{os.getuid()}"
    )
    claimed, handles = [], []
    for cpu in allowed if lock_dir else []:
        try:
            # O_NOFOLLOW: a lock file is never created through a symbolic link planted in its place.
            handle = os.open(lock_dir / f"cpu{cpu}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            log.warning(
                "CPU lock file %s unusable (%s): not claiming CPU %d", lock_dir / f"cpu{cpu}", err, cpu
            )
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another job holds this CPU
            os.close(handle)
            continue
        claimed.append(cpu)
        handles.append(handle)
        if len(claimed) == threads:
            break
    if len(claimed) < threads:  # shared with other jobs: spread by process id
        start = os.getpid() % len(allowed)
        others = [cpu for cpu in allowed[start:] + allowed[:start] if cpu not in claimed]
        claimed += others[: threads - len(claimed)]
        log.info("fewer than %d free CPU(s) of %s: sharing", threads, allowed)
    for task in os.listdir("/proc/self/task"):  # threads already started (e.g. by imports)
        try:
            os.sched_setaffinity(int(task), claimed)
        except ProcessLookupError:  # a thread that has ended since
            pass
    _held_cores.extend(handles)
    log.info("pinned to CPU(s) %s of %s", claimed, allowed)
    return claimed

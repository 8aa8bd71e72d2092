"""Selecting MindSpore's device target, with a clear error when it is not usable here."""

import logging
import os
import stat
import tempfile
from pathlib import Path

from . import WorkflowInputError

log = logging.getLogger("attention_clusters")
DEVICES = ("CPU", "GPU", "Ascend")
# MindSpore takes its device and thread count once per process.
_configured = {}


def available_devices():
    import mindspore.device_context as device_context

    found = []
    for name, module in (("CPU", "cpu"), ("GPU", "gpu"), ("Ascend", "ascend")):
        try:
            if getattr(device_context, module).is_available():
                found.append(name)
        except Exception:  # a backend whose libraries are missing is simply not available
            pass
    return found


def use_device(device, threads=None):
    """Point MindSpore at `device` (CPU, GPU or Ascend) and its CPU kernels at `threads` threads."""
    import mindspore as ms

    if device not in DEVICES:
        raise WorkflowInputError(f"device {device!r}: expected one of {', '.join(DEVICES)}")
    found = available_devices()
    if device not in found:
        raise WorkflowInputError(
            f"device {device!r} was asked for, but this MindSpore ({ms.__version__}) can use only: "
            f"{', '.join(found) or 'none'}"
        )
    ms.set_context(mode=ms.GRAPH_MODE)
    threads = int(threads or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())
    if _configured:
        if _configured["device"] != device:
            raise WorkflowInputError(
                f"device {device!r}: this process already runs on {_configured['device']}"
            )
        return device
    ms.set_device(device)
    import mindspore.device_context as device_context

    device_context.cpu.op_tuning.threads_num(threads)
    if device == "CPU":
        # MindSpore's default of 5 dispatch threads plus parallel op launch competes with
        # its kernel threads on a small CPU: a training step of the extractor took 27-145 ms
        # (batch 64, 2 cores) with the defaults, a steady 24-27 ms with one of each.
        import mindspore.runtime

        mindspore.runtime.dispatch_threads_num(1)
        ms.set_context(inter_op_parallel_num=1)
    _configured.update(device=device, threads=threads)
    log.info("MindSpore %s on %s, %d CPU kernel threads", ms.__version__, device, threads)
    return device


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

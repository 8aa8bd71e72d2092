"""Selecting MindSpore's device target, with a clear error when it is not usable here."""

import logging
import os

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

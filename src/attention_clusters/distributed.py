"""Data-parallel training of a job's models on several workers, launched with MindSpore's `msrun`.

The rule's process (`launch_training`) writes the job's settings to a JSON file and starts
`msrun`, which spawns a scheduler and `workers` ranks, each running this module's `main`.
Every rank builds the same model, draws the same batch order and dropout masks, trains on
its own slice of each global batch (train.rank_rows) and MindSpore averages the gradients
(DATA_PARALLEL with gradients_mean). Rank 0 alone evaluates, writes the resumable state,
the outputs and the rule's log; the others log to their msrun worker logs.

On CPU the ranks are processes of one machine; on GPU or Ascend nodes msrun gives each
local rank its own device (DEVICE_ID).
"""

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import StepFailed
from .atomic import atomic_open

log = logging.getLogger("attention_clusters")


def free_port():
    """A TCP port nobody listens on now, for msrun's scheduler (jobs sharing a node must not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def msrun_command(workers, port, log_dir, spec_path, timeout_seconds=600):
    msrun = Path(sys.executable).with_name("msrun")
    msrun = str(msrun) if msrun.exists() else shutil.which("msrun")
    if msrun is None:
        raise StepFailed("data-parallel training needs MindSpore's `msrun` launcher, which is not on PATH")
    return [
        msrun,
        "--worker_num",
        str(workers),
        "--local_worker_num",
        str(workers),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "--log_dir",
        str(log_dir),
        "--join",
        "True",
        "--cluster_time_out",
        str(timeout_seconds),
        "--tail_worker_log",
        "-1",
        "python",
        "-m",
        "attention_clusters.distributed",
        str(spec_path),
    ]


def launch_training(spec, workers, log_dir, rule_log=None):
    """Train the models `spec` describes (`jobs`, TrainConfigs as dicts; train_models's output
    arguments; `device`, `threads`, `features` and, optionally, `validation`: the paths of the training
    and validation features) on `workers` ranks; rank 0 writes the outputs.
    Returns train_models's summaries. Raises StepFailed naming the worker logs when a rank fails."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):  # logs of an earlier attempt would confuse the failure report
        old.unlink()
    result_path = log_dir / "result.json"
    result_path.unlink(missing_ok=True)
    spec = dict(
        spec, workers=workers, rule_log=str(rule_log) if rule_log else None, result_out=str(result_path)
    )
    spec_path = log_dir / "spec.json"
    with atomic_open(spec_path, "w") as handle:
        json.dump(spec, handle, indent=2)
    command = msrun_command(workers, free_port(), log_dir, spec_path)
    # msrun starts its ranks as `python ...`: make that the interpreter running this job.
    env = dict(
        os.environ,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        PYTHONUNBUFFERED="1",
    )
    log.info("data-parallel training on %d workers: %s", workers, " ".join(command))
    started = time.perf_counter()
    with open(log_dir / "msrun.log", "w") as out:
        code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise StepFailed(
            f"data-parallel training failed (msrun exit code {code}); {failure_summary(log_dir, workers)}"
        )
    log.info(
        "msrun: %d workers finished in %.1f s; their logs are in %s",
        workers,
        time.perf_counter() - started,
        log_dir,
    )
    return json.loads(result_path.read_text())


def failure_summary(log_dir, workers):
    """Which worker logs say why, with the last error line of each."""
    parts = []
    for rank in range(workers):
        path = log_dir / f"worker_{rank}.log"
        if not path.exists():
            parts.append(f"{path}: missing")
            continue
        lines = [
            line.strip()
            for line in path.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith(("[WARNING]", "[INFO]"))
        ]
        errors = [line for line in lines if "Error" in line or "error" in line]
        parts.append(f"{path}: {(errors or lines or ['(empty)'])[-1]}")
    return "; ".join(parts)


def main(spec_path):
    """One msrun rank (and msrun's scheduler, which returns from init() only at the end)."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    from . import WorkflowInputError
    from .devices import use_device
    from .features import load_features
    from .train import TrainConfig, train_models

    spec = json.loads(Path(spec_path).read_text())
    workers = spec.pop("workers")
    threads = max(1, int(spec.pop("threads")) // workers)
    use_device(spec.pop("device"), threads)
    init()
    rank, size = get_rank(), get_group_size()
    handlers = [logging.StreamHandler(sys.stderr)]
    rule_log = spec.pop("rule_log")
    if rank == 0 and rule_log:
        handlers.append(logging.FileHandler(rule_log, mode="a"))
    logging.basicConfig(
        level=logging.INFO,
        handlers=handlers,
        force=True,
        format=f"%(asctime)s rank {rank} %(levelname)s %(message)s",
    )
    if size != workers:
        raise WorkflowInputError(f"msrun started {size} ranks, the job asked for {workers}")
    ms.set_auto_parallel_context(
        parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size
    )
    log.info("rank %d of %d: %d CPU kernel threads, pid %d", rank, size, threads, os.getpid())
    result_out = spec.pop("result_out")
    feats, labels, _ = load_features(spec.pop("features"))
    validation = spec.pop("validation", None)
    if validation is not None:
        validation = load_features(validation)[:2]
    configs = [TrainConfig(**job) for job in spec.pop("jobs")]
    summaries = train_models(feats, labels, configs, rank=rank, workers=size, validation=validation, **spec)
    if rank == 0:
        with atomic_open(result_out, "w") as handle:
            json.dump(summaries, handle)


if __name__ == "__main__":
    main(sys.argv[1])

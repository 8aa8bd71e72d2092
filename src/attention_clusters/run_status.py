"""Where a run stands: each model's state and test top-1 so far, and the time the training has left.

Made from the files a run leaves, while it runs or after it was interrupted: a model is
`evaluated` when its metrics.json is at least as new as its checkpoint and was made with the
sweep's current settings, `trained` when only the checkpoint is there, `training` while its
row's resumable state exists (with the epoch it reached), else `waiting`.

The training time left is estimated per training job from what the run measured: a running (or
cut) job's own seconds per epoch times its epochs left; a job with a benchmark file counts as done
(also one whose settings have changed since, until it starts again); a waiting job's cost (the
rules' train_priority: epochs x (8 + natt) / sqrt(batch) x seeds) times the median seconds per unit
of cost of the jobs that finished (their benchmark files) or run (their epochs so far); the sum over
the jobs divided by the jobs that run at once. Evaluation, export and inference are left out.

The same line ("N of M models evaluated; training left: about T") ends each evaluation's log, from
the plan that a run writes when it starts (write_run_plan, run_progress).
"""

import json
import logging
import math
from pathlib import Path

import pandas as pd

from .atomic import atomic_open
from .reference import reference_to_pass
from .report import benchmark_seconds, markdown_table

log = logging.getLogger("attention_clusters")
COLUMNS = ["model", "state", "test top-1 (%)", "reference (%)", "Δ", "validation top-1 (%)"]


def model_state(model, job):
    """(state, metrics or None) of one model: see the module's docstring."""
    directory = Path(model["directory"])
    checkpoint, metrics_path = directory / "model.ckpt", directory / "metrics.json"
    if checkpoint.exists():
        if metrics_path.exists() and metrics_path.stat().st_mtime >= checkpoint.stat().st_mtime:
            metrics = read_json(metrics_path)
            if all(metrics.get(key) == value for key, value in job.items()):
                return "evaluated", metrics
        return "trained", None
    state = read_json(Path(model["state_dir"]) / "state.json")
    if state:
        return f"training: epoch {state.get('epoch', 0)} of {job['epochs']}", None
    return "waiting", None


def read_json(path):
    """The JSON object in `path`, or {} when it is missing or being rewritten (a running job's)."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def training_left(rows, parallel):
    """Seconds of training left (None when nothing has been measured yet): see the module's docstring."""
    rates, left, waiting = [], 0.0, []
    for row in rows:
        state = read_json(Path(row["state_dir"]) / "state.json")
        history = (state.get("models") or [{}])[0].get("history", [])
        if history:  # running or cut short (its state is kept until it ends): its own seconds per epoch
            per_epoch = sum(entry["seconds"] for entry in history) / len(history)
            left += per_epoch * (row["epochs"] - state.get("epoch", len(history)))
            rates.append(per_epoch * row["epochs"] / row["cost"])
        elif Path(row["benchmark"]).exists():  # finished
            seconds = benchmark_seconds(row["benchmark"])
            if seconds is not None:
                rates.append(seconds / row["cost"])
        else:
            waiting.append(row)
    if waiting and not rates:
        return None
    rate = sorted(rates)[len(rates) // 2] if rates else 0.0
    left += sum(rate * row["cost"] for row in waiting)
    return left / max(1, parallel)


def run_plan(models, row_jobs, model_dir, row_dir, benchmark, parallel):
    """What a run's status is made from (run_status_step's arguments but `out`): `models` (dicts
    with device, attention, fc, natt, seed) with their directories (`model_dir`, and `row_dir`/state
    for their training job's resumable state) and training settings (`row_jobs(model)`: the
    TrainConfig dicts of the model's training job, one per seed); one entry per training job with
    its state directory, `benchmark` file, epochs and cost; `parallel`: the jobs that run at once.
    `model_dir`, `row_dir` and `benchmark` are patterns of a model's keys."""
    rows = {row_dir.format(**model): (model, row_jobs(model)) for model in models}
    return {
        "models": [
            dict(model, directory=model_dir.format(**model), state_dir=row_dir.format(**model) + "/state")
            for model in models
        ],
        "jobs": [
            next(job for job in rows[row_dir.format(**model)][1] if job["seed"] == model["seed"])
            for model in models
        ],
        "rows": [
            {
                "state_dir": f"{directory}/state",
                "benchmark": benchmark.format(**model),
                "epochs": jobs[0]["epochs"],
                "cost": training_cost(jobs),
            }
            for directory, (model, jobs) in rows.items()
        ],
        "parallel": max(1, parallel),
    }


def write_run_plan(plan, out):
    """Keep the run's plan (run_status_step's arguments but `out`) where evaluations find it."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out, "w") as handle:
        json.dump(plan, handle)


def run_progress(plan_path):
    """One line on the whole run from the plan at `plan_path` (write_run_plan): the models evaluated
    so far and the training time left; None without a plan."""
    plan = read_json(plan_path)
    if not plan:
        return None
    done = sum(
        model_state(model, job)[0] == "evaluated"
        for model, job in zip(plan["models"], plan["jobs"], strict=True)
    )
    return progress_line(done, len(plan["models"]), training_left(plan["rows"], plan["parallel"]))


def progress_line(done, count, left):
    if left is None:
        when = "unknown until a training job has run an epoch"
    else:
        when = f"about {_duration(left)}" if left > 0 else "none"
    return f"{done} of {count} models evaluated; training left: {when}"


def run_status_step(models, jobs, rows, parallel, out):
    """The workflow's `run_status` step: `models` (dicts with device, attention, fc, natt, seed,
    directory, state_dir) and `jobs` (each model's training settings) in the same order; `rows`
    (one per training job: state_dir, benchmark, epochs, cost); `parallel`: jobs at once."""
    table, done = [], 0
    for model, job in zip(models, jobs, strict=True):
        state, metrics = model_state(model, job)
        reference, _ = reference_to_pass(model["attention"], model["fc"], model["natt"])
        name = "{device} {attention} fc{fc}/natt{natt} seed {seed}".format(**model)
        cells = [name, state, "", "" if reference is None else f"{reference:.1f}", "", ""]
        if metrics:
            done += 1
            top1 = 100 * float(metrics["top1"])
            cells[2], cells[5] = f"{top1:.1f}", f"{100 * float(metrics['best_val_top1']):.1f}"
            cells[4] = "" if reference is None else f"{top1 - reference:+.1f}"
        table.append(cells)
    progress = progress_line(done, len(models), training_left(rows, parallel))
    lines = [
        "# Where the run stands",
        "",
        f"{progress}.",
        "",
        *markdown_table(pd.DataFrame(table, columns=COLUMNS)),
        "",
        "States: evaluated (test figures of the current settings), trained (evaluation to come), "
        "training (the epoch its job has finished), waiting. Made from the files in results/ "
        "(src/attention_clusters/run_status.py).",
        "",
    ]
    with atomic_open(out, "w") as handle:
        handle.write("\n".join(lines))
    log.info("%s", progress)


def _duration(seconds):
    minutes = math.ceil(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def training_cost(jobs):
    """A training job's relative cost, from its models' settings (train.TrainConfig dicts, which
    share epochs, natt and batch size): a model's cost is about epochs x (8 + natt) (one sample's
    time grows with natt from about 8 units' worth at natt 1, benchmarks/job_layout.py), over
    sqrt(batch size) (bigger batches train more samples/s), times the job's models. The workflow
    orders training jobs by it and estimates the time left from it."""
    job = jobs[0]
    return int(job["epochs"] * (8 + job["natt"]) * 16 / job["batch_size"] ** 0.5 * len(jobs))

"""Reading back the workflow's own bookkeeping files: training histories, the JSON summaries of
each model (train.json, metrics.json, infer/metrics.json, infer/latency.json), metrics.tsv and
Snakemake's benchmark files. A damaged or hand-edited one is one error that names the file, what
is wrong with it, and what to do, instead of a traceback from deep inside the report."""

import json
import math
import os
from pathlib import Path

from . import WorkflowInputError
from .atomic import atomic_open

# metrics.tsv's columns (steps.sweep_metrics), one row per model; all but two are numbers.
METRIC_COLUMNS = (
    "device",
    "fc",
    "natt",
    "attention",
    "epochs",
    "lr",
    "weight_decay",
    "top1",
    "top5",
    "best_epoch",
    "best_val_top1",
    "train_seconds",
    "parameters",
    "seed",
)
METRIC_NUMBERS = tuple(column for column in METRIC_COLUMNS if column not in ("device", "attention"))
ADVICE = (
    "it is one of the workflow's own files: delete it and rerun, and the rule that made it makes it again"
)


def damaged(path, problem):
    return WorkflowInputError(f"{path}: {problem}; {ADVICE}")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_json(path, numbers=(), keys=()):
    """The JSON object in `path`, which must hold every key of `keys` and a finite number at every key
    of `numbers`."""
    try:
        value = json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as err:
        raise damaged(path, f"not JSON ({err})") from None
    if not isinstance(value, dict):
        raise damaged(path, f"expected a JSON object, found {type(value).__name__}")
    missing = [key for key in dict.fromkeys((*keys, *numbers)) if key not in value]
    if missing:
        raise damaged(path, f"missing {', '.join(missing)}")
    bad = [f"{key} = {value[key]!r}" for key in numbers if not _is_number(value[key])]
    if bad:
        raise damaged(path, f"expected finite numbers: {', '.join(bad)}")
    return value


def read_tsv(path, numbers=(), columns=(), rows=0):
    """A tab-separated table with a header, every value as written (strings), which must have the
    `columns` and `numbers` columns, a number in every cell of `numbers`, and at least `rows` rows."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise damaged(
            path, f"not a tab-separated table with a header ({type(err).__name__}: {err})"
        ) from None
    missing = [column for column in dict.fromkeys((*columns, *numbers)) if column not in table.columns]
    if missing:
        raise damaged(path, f"no column(s) {', '.join(missing)} (found {', '.join(map(str, table.columns))})")
    for column in numbers:
        for index, cell in table[column].items():
            try:
                float(cell)
            except ValueError:
                raise damaged(path, f"row {index + 1}, column {column}: {cell!r} is not a number") from None
    if len(table) < rows:
        raise damaged(path, f"{len(table)} row(s), expected at least {rows}")
    return table


def settings_record(path, jobs, summaries):
    """Keep `path` holding a training job's settings (`jobs`: one dict per model) and dated so that it
    is newer than the job's outputs exactly when the models' `summaries` (their train.json) were made
    with other settings: as the job's input, it makes a changed sweep row train again by file times,
    which Snakemake compares without its records in .snakemake/ (params it compares only through
    them). Returns `path`."""
    path = Path(path)
    text = json.dumps(jobs, sort_keys=True, indent=1) + "\n"
    made = [_made_with(summary, job) for summary, job in zip(summaries, jobs, strict=True)]
    current = path.exists() and path.read_text() == text
    if all(made):
        if not current:
            _write_text(path, text)
        oldest = min(Path(summary).stat().st_mtime for summary in summaries)
        if path.stat().st_mtime > oldest:  # older than the models these settings made
            os.utime(path, (oldest - 1, oldest - 1))
    elif not current or any(
        Path(summary).exists() and Path(summary).stat().st_mtime >= path.stat().st_mtime
        for summary in summaries
    ):
        _write_text(path, text)  # now: newer than the models of other settings
    return str(path)


def _made_with(summary, job):
    """Whether the train.json at `summary` records every setting of `job` (False if it is missing or damaged)."""
    try:
        recorded = json.loads(Path(summary).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and all(recorded.get(key) == value for key, value in job.items())


def _write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as handle:
        handle.write(text)

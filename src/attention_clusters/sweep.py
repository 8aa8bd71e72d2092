"""The sweep table: one row per (fc, natt) with its training schedule.

Tab-separated, `#` comment lines allowed. Required columns: fc, natt, lr, weight_decay, epochs.
Optional columns (a value for every row when present): batch_size (default: config
train.batch_size), schedule (constant or cosine; default constant), warmup_epochs (default 0),
patience (epochs without a better validation top-1 before stopping; 0, the default, never stops).
"""

import csv
import math

from . import WorkflowInputError
from .schedules import SCHEDULES

REQUIRED = {"fc": int, "natt": int, "lr": float, "weight_decay": float, "epochs": int}
OPTIONAL = {"batch_size": int, "schedule": str, "warmup_epochs": float, "patience": int}
DEFAULTS = {"batch_size": None, "schedule": "constant", "warmup_epochs": 0.0, "patience": 0}
COLUMNS = {**REQUIRED, **OPTIONAL}


def _checks(row, workers):
    return (
        (row["fc"] in (1, 2), "fc must be 1 or 2"),
        (row["natt"] >= 1, "natt must be >= 1"),
        (math.isfinite(row["lr"]) and row["lr"] > 0, "lr must be a finite number > 0"),
        (
            math.isfinite(row["weight_decay"]) and row["weight_decay"] >= 0,
            "weight_decay must be a finite number >= 0",
        ),
        (row["epochs"] >= 1, "epochs must be >= 1"),
        (row["batch_size"] is None or row["batch_size"] >= 1, "batch_size must be >= 1"),
        (row["schedule"] in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
        (
            math.isfinite(row["warmup_epochs"]) and 0 <= row["warmup_epochs"] <= row["epochs"],
            "warmup_epochs must be between 0 and epochs",
        ),
        (row["patience"] >= 0, "patience must be >= 0"),
        # Only rank 0 of a data-parallel job validates; the other ranks could not tell when to stop.
        (
            row["patience"] == 0 or workers == 1,
            f"patience needs one worker (distributed.workers is {workers})",
        ),
    )


def read_sweep(path, workers=1):
    """Rows of a tab-separated sweep table, checked for jobs of `workers` data-parallel ranks; an
    error names the file, line and column."""
    try:
        # utf-8-sig: a table saved by a spreadsheet may start with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as handle:
            lines = [
                (number, line)
                for number, line in enumerate(handle, start=1)
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except (OSError, UnicodeDecodeError) as err:
        raise WorkflowInputError(f"{path}: cannot read the sweep table ({err})") from err
    if not lines:
        raise WorkflowInputError(f"{path}: the sweep table has no header and no rows")
    header_line, header = lines[0][0], next(csv.reader([lines[0][1]], delimiter="\t"))
    header = [name.strip() for name in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise WorkflowInputError(f"{path}, line {header_line}: column(s) {duplicated} appear more than once")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise WorkflowInputError(
            f"{path}, line {header_line}: unknown column(s) {unknown}; expected "
            f"{list(REQUIRED)} and optionally {list(OPTIONAL)}"
        )
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise WorkflowInputError(
            f"{path}: missing columns {missing}; expected {list(REQUIRED)} and optionally {list(OPTIONAL)}"
        )
    rows, seen = [], set()
    for number, line in lines[1:]:
        fields = next(csv.reader([line], delimiter="\t"))
        if len(fields) != len(header):
            raise WorkflowInputError(
                f"{path}, line {number}: {len(fields)} fields, expected {len(header)} "
                f"(one per column of the header: {header})"
            )
        raw = dict(zip(header, (field.strip() for field in fields), strict=True))
        row = dict(DEFAULTS)
        for column, text in raw.items():
            try:
                row[column] = COLUMNS[column](text)
            except ValueError:
                raise WorkflowInputError(
                    f"{path}, line {number}: {column} = {text!r}, expected {COLUMNS[column].__name__}"
                ) from None
        for ok, message in _checks(row, workers):
            if not ok:
                raise WorkflowInputError(f"{path}, line {number}: {message} (row {raw})")
        key = (row["fc"], row["natt"])
        if key in seen:
            raise WorkflowInputError(f"{path}, line {number}: fc={key[0]} natt={key[1]} appears twice")
        seen.add(key)
        rows.append(row)
    if not rows:
        raise WorkflowInputError(f"{path}: the sweep table has no rows")
    return rows

"""The sweep table: one row per (fc, natt) with its training schedule.

Tab-separated, `#` comment lines allowed. Required columns: fc, natt, lr, weight_decay, epochs.
Optional columns (a value for every row when present): batch_size (default: config
train.batch_size), schedule (constant or cosine; default constant), warmup_epochs (default 0),
patience (epochs without a better validation top-1 before stopping; 0, the default, never stops),
scoring_lr_scale (the scoring layers' rate as a multiple of lr; default config
train.scoring_lr_scale).
Each row is checked against a JSON schema (workflow/schemas/sweep.schema.yaml), as the
snakemake-workflows catalog checks its sample sheets, and for what a schema cannot say.
"""

import csv
import io
import math
from pathlib import Path

import pandas as pd
import yaml

from . import WorkflowInputError
from .config_check import strict_validator

REQUIRED = {"fc": int, "natt": int, "lr": float, "weight_decay": float, "epochs": int}
OPTIONAL = {
    "batch_size": int,
    "schedule": str,
    "warmup_epochs": float,
    "patience": int,
    "scoring_lr_scale": float,
}
DEFAULTS = {
    "batch_size": None,
    "schedule": "constant",
    "warmup_epochs": 0.0,
    "patience": 0,
    "scoring_lr_scale": None,
}
COLUMNS = {**REQUIRED, **OPTIONAL}


def _checks(row, workers):
    """What the schema cannot say."""
    return (
        (
            math.isfinite(row["lr"])
            and math.isfinite(row["weight_decay"])
            and (row["scoring_lr_scale"] is None or math.isfinite(row["scoring_lr_scale"])),
            "lr, weight_decay and scoring_lr_scale must be finite",
        ),
        (
            math.isfinite(row["warmup_epochs"]) and row["warmup_epochs"] <= row["epochs"],
            "warmup_epochs must be between 0 and epochs",
        ),
        # Only rank 0 of a data-parallel job validates; the other ranks could not tell when to stop.
        (
            row["patience"] == 0 or workers == 1,
            f"patience needs one worker (distributed.workers is {workers})",
        ),
    )


def _read_lines(path):
    """(line number, line) of the table's header and rows: no blank or comment lines."""
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
    return lines


def read_sweep(path, schema_path, workers=1):
    """The rows of a sweep table as dicts (every column; defaults where a column is absent), checked
    against the schema at `schema_path` and for jobs of `workers` data-parallel ranks; an error
    names the file, the line and the column."""
    lines = _read_lines(path)
    header = [name.strip() for name in next(csv.reader([lines[0][1]], delimiter="\t"))]
    _check_header(path, lines[0][0], header)
    for number, line in lines[1:]:
        fields = next(csv.reader([line], delimiter="\t"))
        if len(fields) != len(header):
            raise WorkflowInputError(
                f"{path}, line {number}: {len(fields)} fields, expected {len(header)} "
                f"(one per column of the header: {header})"
            )
    if len(lines) == 1:
        raise WorkflowInputError(f"{path}: the sweep table has no rows")
    # pandas reads the rows; the header and the field counts were checked above because its reader
    # renames a duplicated column and does not keep the file's line numbers.
    text = io.StringIO("".join(line for _, line in lines))
    table = pd.read_csv(text, sep="\t", dtype=str, keep_default_na=False).astype(object)
    table.columns, table.index = header, [number for number, _ in lines[1:]]
    for column in header:
        typed = [_typed(path, number, column, value) for number, value in table[column].items()]
        table[column] = pd.Series(typed, index=table.index, dtype=object)  # Python values, not NumPy's
    validator = strict_validator(yaml.safe_load(Path(schema_path).read_text()))
    rows = []
    for number, values in table.to_dict("index").items():
        row = {**DEFAULTS, **values}
        error = next(iter(sorted(validator.iter_errors(row), key=lambda e: list(map(str, e.path)))), None)
        if error is not None:
            where = ".".join(map(str, error.path)) or "row"
            raise WorkflowInputError(f"{path}, line {number}: {where}: {error.message}")
        for ok, message in _checks(row, workers):
            if not ok:
                raise WorkflowInputError(f"{path}, line {number}: {message} (row {values})")
        rows.append(row)
    twice = table.duplicated(["fc", "natt"])
    if twice.any():
        number = twice.idxmax()
        key = table.loc[number, ["fc", "natt"]].tolist()
        raise WorkflowInputError(f"{path}, line {number}: fc={key[0]} natt={key[1]} appears twice")
    return rows


def _check_header(path, line, header):
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise WorkflowInputError(f"{path}, line {line}: column(s) {duplicated} appear more than once")
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise WorkflowInputError(
            f"{path}, line {line}: unknown column(s) {unknown}; expected "
            f"{list(REQUIRED)} and optionally {list(OPTIONAL)}"
        )
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise WorkflowInputError(
            f"{path}: missing columns {missing}; expected {list(REQUIRED)} and optionally {list(OPTIONAL)}"
        )


def _typed(path, number, column, text):
    """A cell's text as its column's type (an int column takes whole numbers written as such; digit
    separators, which Python's int() and float() accept, are refused: `1_6` is no 16)."""
    try:
        if "_" in text:
            raise ValueError(text)
        return COLUMNS[column](text)
    except ValueError:
        raise WorkflowInputError(
            f"{path}, line {number}: {column} = {text!r}, expected {COLUMNS[column].__name__}"
        ) from None

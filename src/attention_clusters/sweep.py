"""The sweep tables: one row per network (attention, fc, natt) with its training schedule.

Tab-separated, `#` comment lines allowed. Required columns: fc, natt, lr, weight_decay, epochs.
Optional columns (a value for every row when present): attention (the row trains that kind
only; without the column a row trains every kind of config sweep.attention), batch_size
(default: config train.batch_size), schedule (constant or cosine; default constant),
warmup_epochs (default 0), patience (epochs without a better validation top-1 before stopping;
0, the default, never stops), scoring_lr_scale (the scoring layers' rate as a multiple of lr;
default config train.scoring_lr_scale). Config sweep.table names one table or several, whose
rows train together: each (attention, fc, natt) once over all of them.
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
    "attention": str,
    "batch_size": int,
    "schedule": str,
    "warmup_epochs": float,
    "patience": int,
    "scoring_lr_scale": float,
}
DEFAULTS = {
    "attention": None,
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
    return [row for _, row in _numbered_rows(path, schema_path, workers)]


def sweep_networks(paths, schema_path, attention, workers=1):
    """{(attention, fc, natt): row} over the sweep tables at `paths` (config sweep.table: one path
    or a list), in the tables' order: a row with an attention column trains that kind, one without
    trains each kind of `attention` (config sweep.attention). A row's kind must be one of
    `attention`, each kind must have a row, and each network must come once: an error names the
    file and line (both lines for a network given twice)."""
    networks, where = {}, {}
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        for number, row in _numbered_rows(path, schema_path, workers):
            if row["attention"] is not None and row["attention"] not in attention:
                raise WorkflowInputError(
                    f"{path}, line {number}: attention {row['attention']!r} is not in config "
                    f"sweep.attention {attention}: add it there or remove the row"
                )
            for kind in [row["attention"]] if row["attention"] else attention:
                key = (kind, row["fc"], row["natt"])
                if key in networks:
                    raise WorkflowInputError(
                        f"{path}, line {number}: attention={kind} fc={row['fc']} natt={row['natt']} "
                        f"appears twice (also {where[key]})"
                    )
                networks[key], where[key] = {**row, "attention": kind}, f"{path}, line {number}"
    for kind in attention:
        if not any(key[0] == kind for key in networks):
            raise WorkflowInputError(
                f"config sweep.attention lists {kind!r}, but no row of {paths} trains it (rows with an "
                "attention column train only their kind)"
            )
    return networks


def _numbered_rows(path, schema_path, workers):
    """(line number, row) of a sweep table: read_sweep's rows with their lines."""
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
        rows.append((number, row))
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

"""The sweep table: one row per (fc, natt) with its learning rate, weight decay and epochs."""

import csv

from . import WorkflowInputError

COLUMNS = {"fc": int, "natt": int, "lr": float, "weight_decay": float, "epochs": int}


def read_sweep(path):
    """Rows of a tab-separated sweep table, checked; an error names the file, line and column."""
    try:
        with open(path, newline="") as handle:
            lines = [line for line in handle if line.strip() and not line.lstrip().startswith("#")]
    except OSError as err:
        raise WorkflowInputError(f"{path}: cannot read the sweep table ({err})") from err
    reader = csv.DictReader(lines, delimiter="\t")
    missing = set(COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise WorkflowInputError(f"{path}: missing columns {sorted(missing)}; expected {list(COLUMNS)}")
    rows, seen = [], set()
    for number, raw in enumerate(reader, start=2):
        row = {}
        for column, kind in COLUMNS.items():
            try:
                row[column] = kind(raw[column])
            except (TypeError, ValueError):
                raise WorkflowInputError(
                    f"{path}, line {number}: {column} = {raw[column]!r}, expected {kind.__name__}") from None
        checks = ((row["fc"] in (1, 2), "fc must be 1 or 2"), (row["natt"] >= 1, "natt must be >= 1"),
                  (row["lr"] > 0, "lr must be > 0"), (row["weight_decay"] >= 0, "weight_decay must be >= 0"),
                  (row["epochs"] >= 1, "epochs must be >= 1"))
        for ok, message in checks:
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

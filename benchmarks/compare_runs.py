"""Whether a change kept the workflow's behaviour: two runs' results/ compared file by file.

    python benchmarks/compare_runs.py BEFORE/results AFTER/results

Every file byte for byte; where bytes differ, JSON and TSV files are compared again without their
timing fields (seconds, rates, latencies) and code digests, and benchmark files and report.md
(whose differences are times) are counted apart. Run the same preset (config/tiny.yaml) from a
checkout of each commit, one after the other.
"""

import json
import sys
from pathlib import Path


def is_timing(key):
    return key == "code" or "second" in key or "_ms" in key or key in {"s", "h:m:s", "mean_load", "cpu_time"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not is_timing(k)}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def tsv_without_timings(data):
    rows = [line.split("\t") for line in data.decode().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if not is_timing(name)] if rows else []
    return [[row[i] for i in keep if i < len(row)] for row in rows]


def same_but_timings(path, a, b):
    if path.parts[0] == "benchmarks" or path.name == "report.md":
        return True
    if path.suffix == ".json":
        return without_timings(json.loads(a)) == without_timings(json.loads(b))
    if path.suffix == ".tsv":
        return tsv_without_timings(a) == tsv_without_timings(b)
    return False


def main(before, after):
    files = sorted(p.relative_to(before) for p in before.rglob("*") if p.is_file())
    others = sorted(p.relative_to(after) for p in after.rglob("*") if p.is_file())
    if files != others:
        print(
            f"different files: only before {set(files) - set(others)}, only after {set(others) - set(files)}"
        )
        return 1
    identical, timings, differ = 0, 0, []
    for path in files:
        a, b = (before / path).read_bytes(), (after / path).read_bytes()
        if a == b:
            identical += 1
        elif same_but_timings(path, a, b):
            timings += 1
        else:
            differ.append(str(path))
    print(
        f"{len(files)} files: {identical} identical, {timings} differ only in timings and code digests "
        f"(benchmarks, report.md, seconds), {len(differ)} differ: {differ}"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))

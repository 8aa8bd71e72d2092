"""Runs one package step from a Snakemake `script:` (`run(snakemake, step)`), so that no value is
spelled twice: the step is called with the job's

- named inputs, by their names;
- named outputs, by their names plus `_out` (one unnamed output: `out`);
- params: the entries of the `settings` dict, and every other param by its name (`code` and
  `upstream` only decide when Snakemake reruns the job);
- `threads`, `rule_log` (the job's log) and `workflow_dir`, when the step takes them.

A job with fewer threads than the CPUs it may use is pinned to that many CPUs, ones no other
job holds where there are enough (`pinning.pin_to_free_cores`).

A name the step does not take is a TypeError naming it: the rule and the step disagree.
The step logs to the job's log; a bad input (StepFailed, FloatingPointError, an OSError
about a file) ends the job with one line naming it and exit status 1.
"""

import inspect
import logging
import os
import sys
import time
from pathlib import Path

from attention_clusters import StepFailed
from attention_clusters.pinning import pin_to_free_cores

OPTIONAL = ("threads", "rule_log", "workflow_dir")  # passed only to steps that take them
RERUN_KEYS = ("code", "upstream")  # params that only key reruns


def job_arguments(snakemake):
    """The step's keyword arguments for this job (see the module's docstring)."""
    arguments = {name: _plain(value) for name, value in snakemake.input.items()}
    outputs = dict(snakemake.output.items())
    if outputs:
        arguments.update({f"{name}_out": _plain(value) for name, value in outputs.items()})
    elif len(snakemake.output) == 1:
        arguments["out"] = snakemake.output[0]
    params = {name: value for name, value in snakemake.params.items() if name not in RERUN_KEYS}
    arguments.update(params.pop("settings", {}))
    arguments.update(params)
    arguments.update(
        threads=snakemake.threads,
        rule_log=snakemake.log[0] if len(snakemake.log) else None,
        workflow_dir=str(Path(snakemake.scriptdir).parent),
    )
    return arguments


def _plain(value):
    """A named input or output of several files as a list of paths, else the path."""
    return value if isinstance(value, str) else list(value)


def step_arguments(step, arguments):
    """`arguments` less the optional ones `step` does not take; a TypeError for any other it does not take."""
    taken = inspect.signature(step).parameters
    unknown = [name for name in arguments if name not in taken and name not in OPTIONAL]
    if unknown:
        raise TypeError(f"{step.__module__}.{step.__name__} takes no argument(s) {unknown} of this rule")
    return {name: value for name, value in arguments.items() if name in taken}


def run(snakemake, step):
    """Run `step` for this job with logging to its log; a bad input exits 1 with one clear line."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        open(log_path, "w").close()
        # Appending: a data-parallel job's rank 0 (another process) writes to the same log.
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(message)s"
    )
    log = logging.getLogger("attention_clusters")
    started = time.perf_counter()
    log.info(
        "rule %s, wildcards %s, params %s",
        snakemake.rule,
        dict(snakemake.wildcards.items()),
        dict(snakemake.params.items()),
    )
    if os.environ.get("SLURM_JOB_ID"):
        log.info(
            "slurm job %s on partition %s, node %s",
            os.environ["SLURM_JOB_ID"],
            os.environ.get("SLURM_JOB_PARTITION"),
            os.environ.get("SLURMD_NODENAME"),
        )
    # A job with fewer threads than the machine's CPUs gets CPUs of its own (the jobs beside it
    # take the others): MindSpore's CPU runtime slows several-fold when jobs share cores, and its
    # arithmetic depends on how many CPUs the process may use.
    pin_to_free_cores(snakemake.threads)
    try:
        step(**step_arguments(step, job_arguments(snakemake)))
    except (StepFailed, FloatingPointError) as err:
        log.error("%s", err)
        sys.exit(1)
    except OSError as err:
        if err.filename is None:  # not about a file: keep the traceback
            raise
        # e.g. a read-only output directory or a full disk: one line naming the file
        log.error("%s: %s", err.filename, err.strerror or err)
        sys.exit(1)
    log.info("rule %s done in %.1f s", snakemake.rule, time.perf_counter() - started)

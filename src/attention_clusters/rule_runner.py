"""Running a step from a Snakemake `script:`: logging to the rule's log, clean errors."""

import logging
import os
import sys
import time

from . import StepFailed


def run(snakemake, step, **kwargs):
    """Run `step(**kwargs)` with logging to snakemake.log[0]; a bad input exits 1 with one clear line."""
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
    try:
        step(**kwargs)
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

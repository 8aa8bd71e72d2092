"""Choosing a row's schedule on validation: candidates x seeds trained in one stack, summarised."""

import sys
from pathlib import Path

import numpy as np
import pytest

from attention_clusters.candidates import candidate_configs, main, summarise
from attention_clusters.features import write_features

sys.path.insert(0, str(Path(__file__).parent))
from conftest import synthetic_flash_features  # noqa: E402


def test_every_candidate_with_every_seed():
    row = dict(fc=1, natt=2, epochs=3, batch_size=64, weight_decay=0.0)
    configs = candidate_configs(row, [1e-3, 3e-3], [0.03, 1.0], [1, 2, 3])
    assert len(configs) == 12
    assert {(c.lr, c.scoring_lr_scale, c.seed) for c in configs} == {
        (lr, s, seed) for lr in (1e-3, 3e-3) for s in (0.03, 1.0) for seed in (1, 2, 3)
    }
    assert all(c.val_fraction == 0.0 and c.epochs == 3 for c in configs)


def test_summary_per_candidate_over_its_seeds():
    row = dict(fc=1, natt=1, epochs=2, batch_size=64, weight_decay=0.0)
    configs = candidate_configs(row, [1e-3, 1e-2], [0.03], [1, 2])
    curves = {1e-3: [(0.5, 0.6), (0.4, 0.3)], 1e-2: [(0.1, 0.2), (0.3, 0.1)]}
    histories = [
        [{"val_top1": v} for v in curves[c.lr][c.seed - 1]] for c in configs
    ]  # lr 1e-3: seed 1 best 0.6, seed 2 best 0.4
    rows = {lr: stats for lr, _, n, stats in summarise(configs, histories, at_epochs=[1])}
    mean, std, worst = rows[1e-3]["best"]
    assert (mean, std, worst) == pytest.approx((50.0, 10.0, 40.0))
    assert rows[1e-3]["epoch 1"] == pytest.approx((45.0, 5.0, 40.0))
    assert rows[1e-2]["best"] == pytest.approx((25.0, 5.0, 20.0))


@pytest.mark.slow
def test_the_command_trains_every_candidate_and_writes_its_table(tmp_path, capsys):
    feats, labels = synthetic_flash_features(2, 0)
    write_features(tmp_path / "train.pkl", [(feats, labels, np.arange(labels.size))])
    vfeats, vlabels = synthetic_flash_features(1, 1)
    write_features(tmp_path / "val.pkl", [(vfeats, vlabels, np.arange(vlabels.size))])
    out = tmp_path / "out"
    argv = [str(tmp_path / "train.pkl"), str(tmp_path / "val.pkl"), "--fc", "1", "--natt", "4"]
    argv += ["--epochs", "2", "--batch-size", "128", "--lr", "3e-3", "1e-2", "--seeds", "1", "2"]
    main(argv + ["--at-epochs", "1", "--out", str(out)])
    table = (out / "candidates.tsv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("fc\tnatt")
    printed = capsys.readouterr().out
    assert "lr 0.003, scoring-rate scale 0.03, 2 seeds: best" in printed and "epoch 1" in printed
    assert len(list(out.glob("*.history.tsv"))) == 4
    # A second call finds every epoch done and trains nothing more.
    main(argv + ["--out", str(out)])
    assert (out / "candidates.tsv").read_text().splitlines() == table

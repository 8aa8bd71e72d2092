"""The workflow's own files read back (`attention_clusters.bookkeeping`): a damaged one is one error
naming the file and what to do."""

import json

import pytest

from attention_clusters import WorkflowInputError
from attention_clusters.bookkeeping import read_json, read_tsv, settings_record
from attention_clusters.report import benchmark_seconds, read_history
from attention_clusters.steps import sweep_metrics

ADVICE = "delete it and rerun"


@pytest.mark.parametrize(
    "text,problem",
    [
        ("garbage", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "expected a JSON object, found list"),
        ("{}", "missing top1"),
        ('{"top1": "high"}', "expected finite numbers: top1 = 'high'"),
        ('{"top1": NaN}', "expected finite numbers: top1 = nan"),
        ('{"top1": true}', "expected finite numbers: top1 = True"),
    ],
)
def test_a_damaged_json_file_is_one_error_naming_it(tmp_path, text, problem):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(WorkflowInputError, match=f"metrics.json: {problem}.*{ADVICE}"):
        read_json(path, numbers=("top1",))


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "not a tab-separated table with a header"),
        ("garbage\n", "no column"),
        ("epoch\tloss\tval_top1\tval_top5\tseconds\n", "0 row"),
        (
            "epoch\tloss\tval_top1\tval_top5\tseconds\n1\thigh\t0.1\t0.2\t3\n",
            "row 1, column loss: 'high' is not a number",
        ),
    ],
)
def test_a_damaged_history_is_one_error_naming_it(tmp_path, text, problem):
    path = tmp_path / "history.tsv"
    path.write_text(text)
    with pytest.raises(WorkflowInputError, match=f"history.tsv: {problem}.*{ADVICE}"):
        read_history(path)


def test_benchmark_files_and_tables(tmp_path):
    path = tmp_path / "bench.tsv"
    path.write_text("s\th:m:s\n12.5\t0:00:12\n")
    assert benchmark_seconds(path) == 12.5
    path.write_text("s\th:m:s\nfast\t0:00:12\n")
    with pytest.raises(WorkflowInputError, match="bench.tsv: row 1, column s: 'fast' is not a number"):
        benchmark_seconds(path)
    path.write_text("a\tb\n1\tx\n")
    assert read_tsv(path, numbers=("a",), columns=("b",)).to_dict("records") == [{"a": "1", "b": "x"}]


def test_metrics_tsv_is_not_written_from_a_damaged_metrics_json(tmp_path):
    good = {"device": "CPU", "attention": "shift", "fc": 1, "natt": 2, "epochs": 3, "lr": 0.001}
    good |= {"weight_decay": 0, "top1": 0.5, "top5": 0.9, "best_epoch": 2, "best_val_top1": 0.6}
    good |= {"train_seconds": 9.0, "parameters": 100, "seed": 1}
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.json").write_text(json.dumps({**good, "top1": "high"}))
    with pytest.raises(WorkflowInputError, match="b.json: expected finite numbers: top1 = 'high'"):
        sweep_metrics([tmp_path / "a.json", tmp_path / "b.json"], tmp_path / "metrics.tsv")
    assert not (tmp_path / "metrics.tsv").exists()
    sweep_metrics([tmp_path / "a.json"], tmp_path / "metrics.tsv")
    assert (tmp_path / "metrics.tsv").read_text().splitlines()[1].startswith("CPU\t1\t2\tshift")


def test_the_settings_record_is_newer_than_models_of_other_settings(tmp_path):
    job = {"fc": 1, "natt": 2, "lr": 0.001, "seed": 1}
    summary = tmp_path / "seed1/train.json"
    record = tmp_path / "settings.json"
    # No model yet: the record is written (the job runs anyway, its outputs are missing).
    settings_record(record, [job], [summary])
    assert json.loads(record.read_text()) == [job]
    # The model made with these settings: the record is dated before it.
    summary.parent.mkdir()
    summary.write_text(json.dumps({**job, "best_epoch": 3}))
    settings_record(record, [job], [summary])
    assert record.stat().st_mtime < summary.stat().st_mtime
    # Another lr: newer than the model, and stays so when asked again.
    changed = dict(job, lr=0.003)
    settings_record(record, [changed], [summary])
    assert json.loads(record.read_text()) == [changed]
    assert record.stat().st_mtime >= summary.stat().st_mtime
    settings_record(record, [changed], [summary])
    assert record.stat().st_mtime >= summary.stat().st_mtime
    # Back to the model's settings (a look at another config changed the record): dated before it again.
    settings_record(record, [job], [summary])
    assert record.stat().st_mtime < summary.stat().st_mtime
    # A damaged train.json is no record of these settings.
    summary.write_text("{")
    settings_record(record, [job], [summary])
    assert record.stat().st_mtime >= summary.stat().st_mtime

"""The sweep table (`config/sweep*.tsv`, `attention_clusters.sweep`) and the learning-rate schedules
its rows name (`attention_clusters.schedules`)."""

from pathlib import Path

import numpy as np
import pytest

from attention_clusters import WorkflowInputError
from attention_clusters.schedules import learning_rates
from attention_clusters.sweep import read_sweep, sweep_networks

ROOT = Path(__file__).resolve().parents[1]
SWEEP_SCHEMA = ROOT / "workflow/schemas/sweep.schema.yaml"


def test_sweep_table_errors(tmp_path):
    rows = read_sweep(ROOT / "config/sweep_modelzoo.tsv", SWEEP_SCHEMA)
    assert len(rows) == 16 and rows[0] == {
        "attention": None,
        "fc": 1,
        "natt": 1,
        "lr": 1e-4,
        "weight_decay": 0.0,
        "epochs": 200,
        "batch_size": None,
        "schedule": "constant",
        "warmup_epochs": 0.0,
        "patience": 0,
        "scoring_lr_scale": None,
    }
    bad = tmp_path / "s.tsv"
    bad.write_text("fc\tnatt\tlr\tweight_decay\tepochs\n3\t8\t1e-3\t0\t2\n")
    with pytest.raises(WorkflowInputError, match=r"s\.tsv, line 2: fc: 3 is not one of \[1, 2\]"):
        read_sweep(bad, SWEEP_SCHEMA)
    bad.write_text("fc\tnatt\tlr\tepochs\n1\t8\t1e-3\t2\n")
    with pytest.raises(WorkflowInputError, match=r"missing columns \['weight_decay'\]"):
        read_sweep(bad, SWEEP_SCHEMA)
    bad.write_text("fc\tnatt\tlr\tweight_decay\tepochs\n1\teight\t1e-3\t0\t2\n")
    with pytest.raises(WorkflowInputError, match=r"line 2: natt = 'eight', expected int"):
        read_sweep(bad, SWEEP_SCHEMA)


HEADER = "fc\tnatt\tlr\tweight_decay\tepochs"


@pytest.mark.parametrize(
    "text,match",
    [
        (HEADER + "\tlr\n1\t8\t1e-3\t0\t2\t5.0\n", r"line 1: column\(s\) \['lr'\] appear more than once"),
        (HEADER + "\n1\t8\t1e-3\t0\t2\t7\n", r"line 2: 6 fields, expected 5"),
        (
            HEADER + "\tlearning_rate\n1\t8\t1e-3\t0\t2\t1\n",
            r"line 1: unknown column\(s\) \['learning_rate'\]",
        ),
        (HEADER + "\n1\t1_6\t1e-3\t0\t2\n", r"line 2: natt = '1_6', expected int"),
        (HEADER + "\n1\t8\t1_0e-3\t0\t2\n", r"line 2: lr = '1_0e-3', expected float"),
        (HEADER + "\n1\t8\tinf\t0\t2\n", r"line 2: lr: inf is greater than the maximum of 1"),
        (HEADER + "\n1\t8\t1e30\t0\t2\n", r"line 2: lr: 1e\+30 is greater than the maximum of 1"),
        (HEADER + "\n1\t8\tnan\t0\t2\n", r"line 2: lr, weight_decay and scoring_lr_scale must be finite"),
        (HEADER + "\n1\t8\t-1e-3\t0\t2\n", r"line 2: lr: -0.001 is less than or equal to the minimum of 0"),
        (HEADER + "\n3\t8\t1e-3\t0\t2\n", r"line 2: fc: 3 is not one of \[1, 2\]"),
        (
            HEADER + "\tattention\n1\t8\t1e-3\t0\t2\tshifted\n",
            r"line 2: attention: 'shifted' is not one of \['shift', 'noshift', 'average', None\]",
        ),
        (
            HEADER + "\tschedule\n1\t8\t1e-3\t0\t2\tlinear\n",
            r"line 2: schedule: 'linear' is not one of \['constant', 'cosine'\]",
        ),
        (
            HEADER + "\twarmup_epochs\n1\t8\t1e-3\t0\t2\t3\n",
            r"line 2: warmup_epochs must be between 0 and epochs",
        ),
        (
            HEADER + "\tscoring_lr_scale\n1\t8\t1e-3\t0\t2\t0\n",
            r"line 2: scoring_lr_scale: 0.0 is less than or equal to the minimum of 0",
        ),
    ],
    ids=[
        "duplicate-column",
        "extra-field",
        "unknown-column",
        "digit-separator-int",
        "digit-separator-float",
        "inf",
        "huge",
        "nan",
        "negative",
        "fc",
        "attention",
        "schedule",
        "warmup",
        "scoring-scale",
    ],
)
def test_sweep_table_format_errors(tmp_path, text, match):
    (tmp_path / "s.tsv").write_text(text)
    with pytest.raises(WorkflowInputError, match=r"s\.tsv, " + match):
        read_sweep(tmp_path / "s.tsv", SWEEP_SCHEMA)


def test_patience_with_several_workers_is_refused_when_the_table_is_read(tmp_path):
    (tmp_path / "s.tsv").write_text(HEADER + "\tpatience\n1\t8\t1e-3\t0\t2\t3\n")
    assert read_sweep(tmp_path / "s.tsv", SWEEP_SCHEMA, workers=1)[0]["patience"] == 3
    with pytest.raises(
        WorkflowInputError, match=r"line 2: patience needs one worker \(distributed.workers is 2\)"
    ):
        read_sweep(tmp_path / "s.tsv", SWEEP_SCHEMA, workers=2)


def test_sweep_table_with_a_byte_order_mark_and_optional_columns(tmp_path):
    (tmp_path / "s.tsv").write_bytes(
        (
            "\ufeff" + HEADER + "\tbatch_size\tschedule\twarmup_epochs\tpatience\tscoring_lr_scale\n"
            "2\t16\t2e-3\t0\t30\t256\tcosine\t1.5\t5\t0.3\n"
        ).encode()
    )
    assert read_sweep(tmp_path / "s.tsv", SWEEP_SCHEMA) == [
        {
            "attention": None,
            "fc": 2,
            "natt": 16,
            "lr": 2e-3,
            "weight_decay": 0.0,
            "epochs": 30,
            "batch_size": 256,
            "schedule": "cosine",
            "warmup_epochs": 1.5,
            "patience": 5,
            "scoring_lr_scale": 0.3,
        }
    ]


def test_learning_rate_schedules():
    assert learning_rates("constant", 1e-3, 4, 10) == 1e-3  # a float: Adam's graph as before
    warm = learning_rates("constant", 1e-3, 4, 10, warmup_epochs=1)
    assert warm.shape == (40,) and warm[0] == pytest.approx(1e-3 / 25) and np.all(np.diff(warm[:10]) > 0)
    assert np.allclose(warm[10:], 1e-3)
    cosine = learning_rates("cosine", 1e-3, 4, 10, warmup_epochs=1)
    assert cosine[10] == pytest.approx(1e-3) and np.all(np.diff(cosine[10:]) < 0) and cosine[-1] < 1e-5
    plain = learning_rates("cosine", 1e-3, 4, 10)
    assert plain[0] == pytest.approx(1e-3) and plain[20] == pytest.approx(0.5e-3, rel=0.05)
    with pytest.raises(WorkflowInputError, match="schedule 'step'"):
        learning_rates("step", 1e-3, 4, 10)


def test_the_sweep_schema_and_the_reader_name_the_same_columns():
    # The schema checks a row, the reader types its cells: both must know every column.
    import yaml

    from attention_clusters.schedules import SCHEDULES
    from attention_clusters.sweep import COLUMNS, DEFAULTS, REQUIRED

    schema = yaml.safe_load(SWEEP_SCHEMA.read_text())
    assert set(schema["properties"]) == set(COLUMNS) == set(schema["required"])
    assert set(DEFAULTS) == set(COLUMNS) - set(REQUIRED)
    assert set(schema["properties"]["schedule"]["enum"]) == set(SCHEDULES)


def test_rows_name_their_attention_kind_or_train_every_kind_over_several_tables(tmp_path):
    """A row with an attention column trains that kind; one without trains each kind of
    sweep.attention; several tables train together, each network once over all of them."""
    shift = tmp_path / "shift.tsv"
    shift.write_text("attention\t" + HEADER + "\nshift\t1\t8\t1e-3\t0\t2\nshift\t2\t8\t1e-3\t0\t2\n")
    columns = tmp_path / "columns.tsv"
    columns.write_text("attention\t" + HEADER + "\nnoshift\t1\t8\t5e-4\t0\t3\naverage\t1\t8\t1e-3\t0\t4\n")
    kinds = ["shift", "noshift", "average"]
    networks = sweep_networks([str(shift), str(columns)], SWEEP_SCHEMA, kinds)
    assert list(networks) == [("shift", 1, 8), ("shift", 2, 8), ("noshift", 1, 8), ("average", 1, 8)]
    assert networks[("noshift", 1, 8)]["lr"] == 5e-4 and networks[("average", 1, 8)]["epochs"] == 4
    # A table without the column: each row for every kind.
    plain = tmp_path / "plain.tsv"
    plain.write_text(HEADER + "\n1\t8\t1e-3\t0\t2\n")
    assert list(sweep_networks(str(plain), SWEEP_SCHEMA, ["shift", "average"])) == [
        ("shift", 1, 8),
        ("average", 1, 8),
    ]
    with pytest.raises(
        WorkflowInputError,
        match=r"plain\.tsv, line 2: attention=shift fc=1 natt=8 appears twice \(also .*shift\.tsv, line 2\)",
    ):
        sweep_networks([str(shift), str(plain)], SWEEP_SCHEMA, ["shift"])
    with pytest.raises(
        WorkflowInputError,
        match=r"columns\.tsv, line 2: attention 'noshift' is not in config sweep\.attention",
    ):
        sweep_networks([str(shift), str(columns)], SWEEP_SCHEMA, ["shift"])
    with pytest.raises(
        WorkflowInputError, match=r"sweep\.attention lists 'average', but no row of .*shift\.tsv"
    ):
        sweep_networks(str(shift), SWEEP_SCHEMA, ["shift", "average"])
    twice = tmp_path / "twice.tsv"
    twice.write_text(HEADER + "\n1\t8\t1e-3\t0\t2\n1\t8\t3e-3\t0\t2\n")
    with pytest.raises(
        WorkflowInputError, match=r"twice\.tsv, line 3: attention=shift fc=1 natt=8 appears twice"
    ):
        sweep_networks(str(twice), SWEEP_SCHEMA, ["shift"])


@pytest.mark.parametrize("subset", ["config/sweep_small.tsv", "config/sweep_spread.tsv"])
def test_tables_of_some_default_rows_copy_their_schedules(subset):
    """The presets that train some of the default rows (other_draw.yaml, spread.yaml) give them the
    schedules of config/sweep.tsv: a change there that is not made in the copies fails here."""
    default = {(row["fc"], row["natt"]): row for row in read_sweep(ROOT / "config/sweep.tsv", SWEEP_SCHEMA)}
    for row in read_sweep(ROOT / subset, SWEEP_SCHEMA):
        given = {key: value for key, value in row.items() if value is not None}
        assert given == {key: default[row["fc"], row["natt"]][key] for key in given}, row

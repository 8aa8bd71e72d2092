"""Choosing a sweep row's schedule on the validation videos: candidate settings x seeds in one stack.

    python -m attention_clusters.candidates results/features/feature_train.pkl \
        results/features/feature_val.pkl --fc 1 --natt 16 --epochs 20 --batch-size 256 \
        --lr 3e-3 1e-2 --scoring-lr-scale 0.03 0.3 --seeds 1 2 3 --out candidates/fc1_natt16

trains every (lr, scoring-rate scale) candidate with every seed in one stacked job (the candidates
share the row's epochs, batch size and schedule: `train.SHARED`) and prints per candidate its
validation top-1 over the seeds (mean, standard deviation, worst) at its best epoch and at chosen
epochs along the way. The test videos take no part. `--out` keeps the resumable state, each model's
history and `candidates.tsv` (one line per model); a cut run resumes after its last epoch.
"""

import argparse
import itertools
import logging
from pathlib import Path

import numpy as np

from .atomic import atomic_open
from .train import TrainConfig, train_models

log = logging.getLogger("attention_clusters")


def candidate_configs(row, lrs, scoring_lr_scales, seeds):
    """TrainConfigs of every (lr, scale, seed), from `row` (TrainConfig fields shared by all)."""
    return [
        TrainConfig(**row, lr=lr, scoring_lr_scale=scale, seed=seed, val_fraction=0.0)
        for lr, scale, seed in itertools.product(lrs, scoring_lr_scales, seeds)
    ]


def summarise(configs, histories, at_epochs=()):
    """Rows (lr, scale, seeds, {label: (mean, std, worst)}) per candidate, in % validation top-1:
    label "best" is each model's best epoch (as the workflow keeps it), "epoch E" its top-1 after E."""
    groups = {}
    for config, history in zip(configs, histories, strict=True):
        groups.setdefault((config.lr, config.scoring_lr_scale), []).append(history)
    rows = []
    for (lr, scale), group in groups.items():
        values = {"best": [max(h["val_top1"] for h in history) for history in group]}
        for epoch in at_epochs:
            values[f"epoch {epoch}"] = [
                history[epoch - 1]["val_top1"] for history in group if len(history) >= epoch
            ]
        stats = {
            label: (100 * np.mean(v), 100 * np.std(v), 100 * np.min(v)) for label, v in values.items() if v
        }
        rows.append((lr, scale, len(group), stats))
    return rows


def format_summary(rows):
    lines = []
    for lr, scale, n, stats in rows:
        cells = "; ".join(f"{label} {m:.1f} ± {s:.1f} (worst {w:.1f})" for label, (m, s, w) in stats.items())
        lines.append(f"lr {lr:g}, scoring-rate scale {scale:g}, {n} seeds: {cells}")
    return "\n".join(lines)


def main(argv=None):
    """Train candidate schedules of one sweep row over several seeds; compare them on validation."""
    from .devices import use_device
    from .features import load_features
    from .report import read_history

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("train_features")
    parser.add_argument("val_features")
    parser.add_argument("--fc", type=int, required=True)
    parser.add_argument("--natt", type=int, required=True)
    parser.add_argument("--attention", default="shift")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--lr", type=float, nargs="+", required=True)
    parser.add_argument("--scoring-lr-scale", type=float, nargs="+", default=[0.03])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--at-epochs", type=int, nargs="*", default=[], help="also report these epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="directory for the state, histories and candidates.tsv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    use_device("CPU", args.threads)
    row = dict(
        fc=args.fc,
        natt=args.natt,
        attention=args.attention,
        epochs=args.epochs,
        batch_size=args.batch_size,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
    )
    configs = candidate_configs(row, args.lr, args.scoring_lr_scale, args.seeds)
    feats, labels, _ = load_features(args.train_features)
    val = load_features(args.val_features, frames=feats.shape[1])[:2]
    out = Path(args.out)
    names = [f"lr{c.lr:g}_scale{c.scoring_lr_scale:g}_seed{c.seed}" for c in configs]
    outputs = [
        {"checkpoint_out": out / f"{name}.ckpt", "history_out": out / f"{name}.history.tsv"} for name in names
    ]
    summaries = train_models(feats, labels, configs, out / "state", outputs, validation=val)
    histories = [read_history(o["history_out"]).astype(float).to_dict("records") for o in outputs]
    with atomic_open(out / "candidates.tsv", "w") as handle:
        handle.write("fc\tnatt\tepochs\tbatch_size\tlr\tscoring_lr_scale\tseed\tbest_epoch\tbest_val_top1\n")
        for config, summary in zip(configs, summaries, strict=True):
            handle.write(
                f"{config.fc}\t{config.natt}\t{config.epochs}\t{config.batch_size}\t{config.lr:g}\t"
                f"{config.scoring_lr_scale:g}\t{config.seed}\t{summary['best_epoch']}\t"
                f"{summary['best_val_top1']:.4f}\n"
            )
    print(
        f"fc{args.fc}/natt{args.natt}, {args.epochs} epochs, batch {args.batch_size}, validation top-1 (%):"
    )
    print(format_summary(summarise(configs, histories, args.at_epochs)))


if __name__ == "__main__":
    main()

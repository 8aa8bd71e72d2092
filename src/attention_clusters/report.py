"""results/report.md: the sweep's results beside the references, inference, timings and plots."""

import csv
import json
import logging
from pathlib import Path

from .atomic import atomic_open, atomic_path
from .reference import SEED, paper_shift

log = logging.getLogger("attention_clusters")


def read_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _pct(value):
    return "" if value is None else f"{value:.1f}"


def _diff(ours, ref):
    return "" if ours is None or ref is None else f"{ours - ref:+.1f}"


def results_table(rows, devices):
    """The seed's table shape, one top-1 column per device, with the references and differences."""
    by_model = {}
    for row in rows:
        by_model.setdefault((int(row["fc"]), int(row["natt"])), {})[row["device"]] = row
    head = ["fc", "natt", "epochs", "lr", "weight decay"]
    head += [f"{d} top-1 (%)" for d in devices] + [f"{d} top-5 (%)" for d in devices]
    head += ["seed Ascend", "Δ", "seed GPU", "Δ", "paper shift", "Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (fc, natt), per_device in sorted(by_model.items()):
        first = next(iter(per_device.values()))
        top1 = {d: 100 * float(per_device[d]["top1"]) if d in per_device else None for d in devices}
        top5 = {d: 100 * float(per_device[d]["top5"]) if d in per_device else None for d in devices}
        best = max((v for v in top1.values() if v is not None), default=None)
        seed = SEED.get((fc, natt))
        ascend, gpu = (seed[2], seed[3]) if seed else (None, None)
        paper = paper_shift(fc, natt)
        cells = [fc, natt, first["epochs"], first["lr"], first["weight_decay"]]
        cells += [_pct(top1[d]) for d in devices] + [_pct(top5[d]) for d in devices]
        cells += [_pct(ascend), _diff(best, ascend), _pct(gpu), _diff(best, gpu), _pct(paper), _diff(best, paper)]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def plot_accuracy(rows, devices, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for fc, ax in zip((1, 2), axes):
        natts = sorted(n for f, n in SEED if f == fc)
        ax.plot(natts, [SEED[(fc, n)][2] for n in natts], "k--", lw=1, label="seed, Ascend 910")
        ax.plot(natts, [SEED[(fc, n)][3] for n in natts], "k:", lw=1, label="seed, RTX 3090")
        ax.plot(natts, [paper_shift(fc, n) for n in natts], color="grey", lw=2, alpha=0.6, label="paper, shift")
        for device in devices:
            mine = sorted((int(r["natt"]), 100 * float(r["top1"])) for r in rows
                          if int(r["fc"]) == fc and r["device"] == device)
            if mine:
                ax.plot(*zip(*mine), "o-", label=f"this workflow, {device}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("attention units (natt)")
        ax.set_title(f"FC{fc} weighting")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test top-1 (%)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_history(history_tsv, title, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    history = read_tsv(history_tsv)
    epochs = [int(r["epoch"]) for r in history]
    fig, left = plt.subplots(figsize=(6, 3.4))
    left.plot(epochs, [float(r["loss"]) for r in history], color="tab:blue")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss", color="tab:blue")
    right = left.twinx()
    right.plot(epochs, [100 * float(r["val_top1"]) for r in history], color="tab:orange", label="top-1")
    right.plot(epochs, [100 * float(r["val_top5"]) for r in history], color="tab:orange", ls="--", label="top-5")
    right.set_ylabel("validation accuracy (%)", color="tab:orange")
    right.legend(fontsize=8, loc="center right")
    left.set_title(title)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def benchmark_seconds(path):
    rows = read_tsv(path)
    return float(rows[0]["s"]) if rows else None


def write_report(metrics_tsv, models, data_benchmarks, devices, out_md, accuracy_png):
    """`models`: list of dicts with device, fc, natt, history, infer_metrics, train_benchmark, curve_png."""
    rows = read_tsv(metrics_tsv)
    out_md = Path(out_md)
    plot_accuracy(rows, devices, accuracy_png)
    for model in models:
        plot_history(model["history"], f"{model['device']} fc{model['fc']} natt{model['natt']}", model["curve_png"])

    lines = ["# Attention Clusters on Flash-MNIST: results", ""]
    lines += ["Test top-1 and top-5 of every model of the sweep, chosen at its best validation epoch, "
              "beside the seed's (MindSpore ModelZoo, 200 epochs) and the paper's numbers. Δ is the best "
              "device's top-1 minus the reference, in points.", ""]
    lines += results_table(rows, devices)
    rel = lambda p: Path(p).resolve().relative_to(out_md.parent.resolve()).as_posix()  # noqa: E731
    lines += ["", f"![top-1 against the number of attention units]({rel(accuracy_png)})", ""]

    lines += ["## Inference (exported MINDIR, the seed's 310 file formats)", "",
              "| model | device | top-1 (%) | top-5 (%) | latency per batch (ms) | batch | videos/s | equals eval |",
              "|---|---|---|---|---|---|---|---|"]
    for model in models:
        with open(model["infer_metrics"]) as handle:
            inf = json.load(handle)
        lines.append(f"| fc{model['fc']} natt{model['natt']} | {model['infer_device']} (trained on "
                     f"{model['device']}) | {100 * inf['top1']:.1f} | {100 * inf['top5']:.1f} | "
                     f"{inf['latency_ms_per_batch']:.2f} | {inf['batch_size']} | {inf['videos_per_second']:,.0f} | "
                     f"{'yes' if inf['agrees_with_eval'] else 'no, ' + str(inf['disagreements']) + ' videos differ'} |")

    lines += ["", "## Training time per model", "", "| model | device | epochs | best epoch | job time (s) | "
              "training (s) | parameters |", "|---|---|---|---|---|---|---|"]
    by_key = {(r["device"], int(r["fc"]), int(r["natt"])): r for r in rows}
    for model in models:
        r = by_key[(model["device"], model["fc"], model["natt"])]
        lines.append(f"| fc{model['fc']} natt{model['natt']} | {model['device']} | {r['epochs']} | "
                     f"{r['best_epoch']} | {benchmark_seconds(model['train_benchmark']):.1f} | "
                     f"{float(r['train_seconds']):.1f} | {int(r['parameters']):,} |")

    lines += ["", "## Data stages", "", "| step | time (s) |", "|---|---|"]
    for name, path in data_benchmarks.items():
        lines.append(f"| {name} | {benchmark_seconds(path):.1f} |")

    lines += ["", "## Training curves", ""]
    for model in models:
        lines.append(f"![{model['device']} fc{model['fc']} natt{model['natt']}]({rel(model['curve_png'])})")
    lines += ["", f"Every row is also in `{Path(metrics_tsv).name}`.", ""]
    with atomic_open(out_md, "w") as handle:
        handle.write("\n".join(lines))
    log.info("report: %d models, %s", len(models), out_md)

"""results/report.md: the sweep's results beside the references, inference, timings and plots.

Models that differ only by seed are grouped: accuracies are given as mean ± standard
deviation over the seeds, with their number.
"""

import logging
from pathlib import Path

import pandas as pd

from .atomic import atomic_open, atomic_path
from .bookkeeping import METRIC_COLUMNS, METRIC_NUMBERS, read_json, read_tsv
from .npy_stream import load_npy
from .reference import MODELZOO, PAPER, PAPER_COLUMNS, paper_reference

log = logging.getLogger("attention_clusters")


HISTORY_NUMBERS = ("epoch", "loss", "val_top1", "val_top5", "seconds")


def read_history(path):
    """A model's history.tsv (train.write_outputs), checked."""
    return read_tsv(path, numbers=HISTORY_NUMBERS, rows=1)


def summarize(table):
    """metrics.tsv's rows grouped over seeds: one row per (attention, fc, natt, device) with top-1
    and top-5 in % (mean, sample standard deviation; `top1_spread`: the population one, for the
    plot's error bars), the mean validation top-1 at the best epochs, the number of seeds `n`, and
    the first seed's epochs, lr and weight decay."""
    table = table.assign(
        fc=table["fc"].astype(int),
        natt=table["natt"].astype(int),
        top1=100 * table["top1"].astype(float),
        top5=100 * table["top5"].astype(float),
        val_top1=100 * table["best_val_top1"].astype(float),
    )
    return table.groupby(["attention", "fc", "natt", "device"]).agg(
        top1_mean=("top1", "mean"),
        top1_std=("top1", "std"),
        top1_spread=("top1", lambda values: values.std(ddof=0)),
        top1_min=("top1", "min"),
        top5_mean=("top5", "mean"),
        top5_std=("top5", "std"),
        top5_min=("top5", "min"),
        val_top1_mean=("val_top1", "mean"),
        n=("top1", "size"),
        epochs=("epochs", "first"),
        lr=("lr", "first"),
        weight_decay=("weight_decay", "first"),
    )


def markdown_table(table):
    """A DataFrame as a Markdown table: its column labels as the header, each cell as str()."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]


def mean_std(mean, std, n, worst):
    """'mean' for one seed, else 'mean ± std (n=…, worst …)' with the worst seed's value, in %; '' for none."""
    if not n:
        return ""
    return f"{mean:.1f}" if n == 1 else f"{mean:.1f} ± {std:.1f} (n={n}, worst {worst:.1f})"


def _pct(value):
    return "" if value is None else f"{value:.1f}"


def _diff(ours, ref):
    return "" if ours is None or ref is None else f"{ours - ref:+.1f}"


def device_cell(per_device, device, metric):
    """(mean, std, n, worst) of `metric` for `device`, or (None, None, 0, None) if it has no model there."""
    if device not in per_device.index:
        return None, None, 0, None
    return (
        per_device.at[device, f"{metric}_mean"],
        per_device.at[device, f"{metric}_std"],
        per_device.at[device, "n"],
        per_device.at[device, f"{metric}_min"],
    )


def results_table(summary, devices):
    """The ModelZoo's table shape: one top-1 column per device (mean ± std over seeds), top-5, the mean
    validation top-1 (which chose each best epoch: its gap to test shows how well it predicts it),
    references, Δ."""
    head = ["attention", "fc", "natt", "epochs", "lr", "weight decay"]
    head += [f"{d} top-1 (%)" for d in devices] + [f"{d} top-5 (%)" for d in devices]
    head += [f"{d} validation top-1 (%)" for d in devices]
    head += ["ModelZoo Ascend", "Δ", "ModelZoo GPU", "Δ", "paper", "Δ"]
    rows = []
    for (attention, fc, natt), per_device in summary.groupby(level=["attention", "fc", "natt"]):
        per_device = per_device.droplevel(["attention", "fc", "natt"])  # indexed by device
        first = per_device.iloc[0]
        means = [per_device.at[d, "top1_mean"] for d in devices if d in per_device.index]
        best = max(means) if means else None
        modelzoo = MODELZOO.get((fc, natt)) if attention == "shift" else None
        ascend, gpu = (modelzoo[2], modelzoo[3]) if modelzoo else (None, None)
        paper = paper_reference(attention, fc, natt)
        cells = [attention, fc, natt, first["epochs"], first["lr"], first["weight_decay"]]
        for metric in ("top1", "top5"):
            cells += [mean_std(*device_cell(per_device, d, metric)) for d in devices]
        cells += [_pct(per_device.at[d, "val_top1_mean"] if d in per_device.index else None) for d in devices]
        cells += [
            _pct(ascend),
            _diff(best, ascend),
            _pct(gpu),
            _diff(best, gpu),
            _pct(paper),
            _diff(best, paper),
        ]
        rows.append(cells)
    return markdown_table(pd.DataFrame(rows, columns=head))


def paper_cell(summary, attention, fc, natt, device):
    """(mean, std, seeds) of top-1 for a cell of the paper's table, None where nothing ran. The
    Average column has no weighting function (the network has no scoring layers): fc1's models,
    else fc2's."""
    for f in (fc,) if fc is not None else (1, 2):
        key = (attention, f, natt, device)
        if key in summary.index:
            return summary.at[key, "top1_mean"], summary.at[key, "top1_std"], summary.at[key, "n"]
    return None


def paper_table(summary, device):
    """The paper's Flash-MNIST table, column by column: this workflow's mean top-1 over seeds (± the
    standard deviation, with 2 or more) / the paper's."""
    rows = []
    for natt, reference in sorted(PAPER.items()):
        cells = [natt]
        for attention, fc, index, _ in PAPER_COLUMNS:
            ours = paper_cell(summary, attention, fc, natt, device)
            if ours is None:
                cells.append(f"– / {reference[index]}")
            else:
                mean, std, seeds = ours
                spread = f" ± {std:.1f}" if seeds > 1 else ""
                cells.append(f"**{mean:.1f}{spread}** / {reference[index]}")
        rows.append(cells)
    return markdown_table(pd.DataFrame(rows, columns=["n"] + [title for *_, title in PAPER_COLUMNS]))


# "Far below": the Average column at least this many points under the shift column at an n.
FAR_BELOW = 30.0


def paper_claims(summary, device):
    """The column-to-column differences the paper's table shows, checked on this workflow's means
    (over every n where both columns ran) beside the same check on the paper's numbers: shifting
    beats no shifting and no shifting beats averaging at each n, averaging is far below shifting,
    and the gap between shifting and no shifting closes as n grows."""
    columns = {(kind, fc): index for kind, fc, index, _ in PAPER_COLUMNS}
    paper = {(kind, fc, n): PAPER[n][columns[(kind, fc)]] for kind, fc in columns for n in PAPER}
    ours = {}
    for kind, fc in columns:
        for n in PAPER:
            cell = paper_cell(summary, kind, fc, n, device)
            if cell is not None:
                ours[(kind, fc, n)] = cell[0]

    def count(values, better, worse, margin=0.0):
        ns = [n for n in sorted(PAPER) if (*better, n) in values and (*worse, n) in values]
        held = [n for n in ns if values[(*better, n)] - values[(*worse, n)] >= margin]
        if not ns:
            return "not run"
        missed = [n for n in ns if n not in held]
        return f"{len(held)} of {len(ns)} n" + (
            f" (not at n = {', '.join(map(str, missed))})" if missed else ""
        )

    def gap(values, fc):
        ns = [n for n in sorted(PAPER) if ("shift", fc, n) in values and ("noshift", fc, n) in values]
        if len(ns) < 2:
            return "not run"
        first, last = (values[("shift", fc, n)] - values[("noshift", fc, n)] for n in (ns[0], ns[-1]))
        return f"{first:+.1f} at n = {ns[0]} to {last:+.1f} at n = {ns[-1]}"

    rows = []
    for fc in (1, 2):
        rows.append(
            [
                f"FC{fc}: shift ≥ no shift",
                count(ours, ("shift", fc), ("noshift", fc)),
                count(paper, ("shift", fc), ("noshift", fc)),
            ]
        )
        rows.append(
            [
                f"FC{fc}: no shift ≥ Average",
                count(ours, ("noshift", fc), ("average", None)),
                count(paper, ("noshift", fc), ("average", None)),
            ]
        )
        rows.append(
            [
                f"FC{fc}: Average at least {FAR_BELOW:.0f} points under shift",
                count(ours, ("shift", fc), ("average", None), FAR_BELOW),
                count(paper, ("shift", fc), ("average", None), FAR_BELOW),
            ]
        )
        rows.append([f"FC{fc}: shift − no shift, as n grows", gap(ours, fc), gap(paper, fc)])
    return markdown_table(
        pd.DataFrame(rows, columns=["the paper's table shows", "this workflow", "the paper"])
    )


def plot_accuracy(summary, devices, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for fc, ax in zip((1, 2), axes, strict=True):
        natts = sorted(n for f, n in MODELZOO if f == fc)
        ax.plot(natts, [MODELZOO[(fc, n)][2] for n in natts], "k--", lw=1, label="ModelZoo, Ascend 910")
        ax.plot(natts, [MODELZOO[(fc, n)][3] for n in natts], "k:", lw=1, label="ModelZoo, RTX 3090")
        ax.plot(
            natts,
            [paper_reference("shift", fc, n) for n in natts],
            color="grey",
            lw=2,
            alpha=0.6,
            label="paper, shift",
        )
        for device in devices:
            for attention in sorted(summary.index.unique("attention")):
                level = summary.index.get_level_values
                points = summary[
                    (level("attention") == attention) & (level("fc") == fc) & (level("device") == device)
                ]
                if len(points):
                    ax.errorbar(
                        points.index.get_level_values("natt"),
                        points["top1_mean"],
                        yerr=points["top1_spread"],
                        fmt="o-",
                        capsize=3,
                        label=f"this workflow, {device}, {attention}",
                    )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("attention units (natt)")
        ax.set_title(f"FC{fc} weighting")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test top-1 (%)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_history(history_tsv, title, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(history_tsv)
    epochs = history["epoch"].astype(int)
    fig, left = plt.subplots(figsize=(6, 3.4))
    left.plot(epochs, history["loss"].astype(float), color="tab:blue")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss", color="tab:blue")
    right = left.twinx()
    right.plot(epochs, 100 * history["val_top1"].astype(float), color="tab:orange", label="top-1")
    right.plot(epochs, 100 * history["val_top5"].astype(float), color="tab:orange", ls="--", label="top-5")
    right.set_ylabel("validation accuracy (%)", color="tab:orange")
    right.legend(fontsize=8, loc="center right")
    left.set_title(title)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_curves(history, device, attention, fc, natt, seed, png_out):
    """One model's training curve (the workflow's per-model `plot_curves` step)."""
    model = {"attention": attention, "fc": fc, "natt": natt, "seed": seed}
    plot_history(history, f"{device} {model_name(model)}", png_out)


def benchmark_seconds(path):
    """The wall seconds a Snakemake benchmark file records, or None if it has no row."""
    table = read_tsv(path, numbers=("s",))
    return float(table["s"].iloc[0]) if len(table) else None


def git_commit(repository):
    """The checkout's commit, marked when tracked files have uncommitted changes."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(
                ["git", "-C", str(repository), *args], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    return commit


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    import platform

    return (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )


def busy_seconds(intervals):
    """The length of the union of (start, end) intervals: the seconds during which some job ran."""
    total, reach = 0.0, float("-inf")
    for begin, end in sorted(intervals):
        if end > reach:
            total += end - max(begin, reach)
            reach = end
    return total


def run_lines(benchmarks, config, repository):
    """The report's record of the run: commit, machine, when it ran, and the merged config.

    A job's start is its benchmark file's time less the seconds it records; the run spans the
    earliest such start to now (the report is its last job). A run stopped and resumed later spans
    its pause too, so the time during which some job ran (the union of the jobs' intervals; a job
    cut short and resumed counts from its resumption) is given beside it."""
    import datetime
    import os
    import platform

    import yaml

    commit = git_commit(repository)
    intervals = []
    for path in benchmarks:
        seconds = benchmark_seconds(path)
        if seconds is not None:
            end = Path(path).stat().st_mtime
            intervals.append((end - seconds, end))
    starts = [begin for begin, _ in intervals]
    now = datetime.datetime.now(datetime.timezone.utc)
    start = datetime.datetime.fromtimestamp(min(starts), datetime.timezone.utc) if starts else now
    cpu = cpu_model()
    try:
        import mindspore

        mindspore_version = mindspore.__version__
    except ImportError:
        mindspore_version = "not installed"
    wall = (now - start).total_seconds()
    # The report's own job (the run's last) has no benchmark yet: from the last job's end to now.
    last = max((end for _, end in intervals), default=now.timestamp())
    busy = busy_seconds(intervals + [(last, now.timestamp())])
    return [
        "## The run",
        "",
        f"- commit: {commit}",
        f"- machine: {os.cpu_count()} cores, {cpu}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, MindSpore {mindspore_version}",
        f"- from the first timed job to this report: {start:%Y-%m-%d %H:%M:%S} to {now:%Y-%m-%d %H:%M:%S} UTC, "
        f"{wall / 3600:.2f} h ({wall:,.0f} s); some job running during {busy / 3600:.2f} h ({busy:,.0f} s) "
        "of it; each job's time is in the tables above and in `results/benchmarks/`",
        "",
        "The merged config:",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
        "",
    ]


def model_name(model):
    return f"{model['attention']} fc{model['fc']} natt{model['natt']} seed {model['seed']}"


def confusion_lines(pictures, test_labels):
    from .attention_pictures import one_digit_confusion

    labels = load_npy(test_labels)
    lines = []
    for picture in pictures:
        stats = one_digit_confusion(load_npy(picture["predictions"]), labels)
        lines += [
            f"### {picture['name']}",
            "",
            f"![attention of {picture['name']}]({picture['png_rel']})",
            "",
            f"{stats['wrong']} of {labels.size} test videos are misclassified; {stats['one_digit']} of those "
            "differ from their label in exactly one digit:",
            "",
            "| digit | " + " | ".join(str(d) for d in range(10)) + " |",
            "|---" * 11 + "|",
            "| missed | " + " | ".join(str(int(v)) for v in stats["missed"]) + " |",
            "| added | " + " | ".join(str(int(v)) for v in stats["added"]) + " |",
            "",
        ]
    return lines


INFERENCE_COLUMNS = [
    "model",
    "device",
    "top-1 (%)",
    "top-5 (%)",
    "latency per batch (ms)",
    "batch",
    "videos/s",
    "equals eval",
]
SETTINGS_COLUMNS = [
    "model",
    "device",
    "batch",
    "lr",
    "scoring ×lr",
    "schedule",
    "warm-up",
    "weight decay",
    "epochs run / max",
    "patience",
    "best epoch",
    "job time (s)",
    "training (s)",
    "parameters",
]


def inference_lines(models):
    """The inference section: each exported model's accuracy, latency and agreement with eval."""
    rows = []
    for model in models:
        inf = read_json(
            model["infer_metrics"],
            numbers=(
                "top1",
                "top5",
                "latency_ms_per_batch",
                "videos_per_second",
                "batch_size",
                "disagreements",
            ),
            keys=("agrees_with_eval",),
        )
        rows.append(
            {
                "model": model_name(model),
                "device": f"{model['infer_device']} (trained on {model['device']})",
                "top-1 (%)": f"{100 * inf['top1']:.1f}",
                "top-5 (%)": f"{100 * inf['top5']:.1f}",
                "latency per batch (ms)": f"{inf['latency_ms_per_batch']:.2f}",
                "batch": inf["batch_size"],
                "videos/s": f"{inf['videos_per_second']:,.0f}",
                "equals eval": "yes"
                if inf["agrees_with_eval"]
                else f"no, {inf['disagreements']} videos differ",
            }
        )
    table = markdown_table(pd.DataFrame(rows, columns=INFERENCE_COLUMNS))
    return ["## Inference (exported MINDIR, the ModelZoo's 310 file formats)", "", *table]


def settings_lines(models, table):
    """Which settings made each model (from its train.json), its best epoch and its times."""
    rows = []
    by_key = table.set_index(["device", "attention", "fc", "natt", "seed"])
    for model in models:
        key = tuple(str(model[k]) for k in ("device", "attention", "fc", "natt", "seed"))
        r = by_key.loc[key]
        settings = read_json(model["summary"], numbers=("batch_size", "lr", "weight_decay", "epochs"))
        run_epochs = len(read_history(model["history"]))
        rows.append(
            [
                model_name(model),
                model["device"],
                settings["batch_size"],
                f"{settings['lr']:g}",
                f"{settings.get('scoring_lr_scale', 1.0):g}",
                settings.get("schedule", "constant"),
                f"{settings.get('warmup_epochs', 0):g}",
                f"{settings['weight_decay']:g}",
                f"{run_epochs} / {settings['epochs']}",
                settings.get("patience", 0) or "–",
                r["best_epoch"],
                f"{benchmark_seconds(model['train_benchmark']):.1f}",
                f"{float(r['train_seconds']):.1f}",
                f"{int(r['parameters']):,}",
            ]
        )
    table = markdown_table(pd.DataFrame(rows, columns=SETTINGS_COLUMNS))
    return ["", "## Training settings and time per model", "", *table]


def intro_lines(table):
    """The report's title and what its main table shows."""
    seeds = sorted(table["seed"].unique())
    lines = ["# Attention Clusters on Flash-MNIST: results", ""]
    lines += [
        f"Test top-1 and top-5 of every model of the sweep, each chosen at its best validation epoch; "
        f"mean ± standard deviation over {len(seeds)} seed(s) ({', '.join(seeds)}) where there are several, "
        "with the worst seed. "
        "Beside them the ModelZoo's numbers (MindSpore ModelZoo, 200 epochs, shifting attention) and the "
        "paper's for the same kind of attention. Δ is the best device's mean top-1 minus the reference, "
        "in points.",
        "",
    ]
    return lines


def report_step(
    *,
    metrics,
    histories,
    summaries,
    infer,
    train_benchmarks,
    curves,
    data_benchmarks,
    pictures,
    picture_predictions,
    test_labels,
    models,
    devices,
    infer_device,
    config,
    data_steps,
    picture_names,
    report_out,
    accuracy_out,
    workflow_dir=".",
):
    """The workflow's `report` step: its inputs are lists in the order of `models` (per model) and
    of `picture_names` (per attention picture); `data_benchmarks` in the order of `data_steps`."""
    per_model = zip(models, histories, infer, train_benchmarks, curves, summaries, strict=True)
    models = [
        {
            **model,
            "history": history,
            "infer_metrics": inf,
            "train_benchmark": benchmark,
            "curve_png": curve,
            "summary": summary,
            "infer_device": infer_device,
        }
        for model, history, inf, benchmark, curve, summary in per_model
    ]
    pictures = [
        {"name": name, "png": png, "predictions": predictions}
        for name, png, predictions in zip(picture_names, pictures, picture_predictions, strict=True)
    ]
    write_report(
        metrics,
        models,
        dict(zip(data_steps, data_benchmarks, strict=True)),
        devices,
        report_out,
        accuracy_out,
        pictures=pictures,
        test_labels=test_labels,
        config=config,
        repository=workflow_dir,
    )


def write_report(
    metrics_tsv,
    models,
    data_benchmarks,
    devices,
    out_md,
    accuracy_png,
    *,
    pictures=(),
    test_labels=None,
    config=None,
    repository=".",
):
    """`models`: dicts with device, attention, fc, natt, seed, history, infer_metrics, train_benchmark,
    curve_png (drawn by plot_curves), summary (the training job's train.json). `pictures`: dicts with name,
    png, predictions (the attention pictures' models). `config` (the merged config) and `repository`
    (the workflow's checkout) go into the record of the run."""
    table = read_tsv(metrics_tsv, columns=METRIC_COLUMNS, numbers=METRIC_NUMBERS)
    summary = summarize(table)
    out_md = Path(out_md)
    rel = lambda p: Path(p).resolve().relative_to(out_md.parent.resolve()).as_posix()  # noqa: E731
    plot_accuracy(summary, devices, accuracy_png)

    lines = intro_lines(table)
    lines += results_table(summary, devices)
    lines += ["", f"![top-1 against the number of attention units]({rel(accuracy_png)})", ""]
    lines += [
        f"## The paper's table, column by column ({devices[0]}: this workflow / the paper, top-1 %)",
        "",
    ]
    lines += paper_table(summary, devices[0])
    lines += ["", "Its columns against each other, where both ran (means over seeds):", ""]
    lines += paper_claims(summary, devices[0])

    if pictures:
        lines += [
            "",
            "## What the attention units look at",
            "",
            "Four test videos per model, their 25 frames in a row (red: frames showing a digit), and below "
            "them each unit's attention weights over the frames, as the model computes them.",
            "",
        ]
        lines += confusion_lines([{**p, "png_rel": rel(p["png"])} for p in pictures], test_labels)

    lines += inference_lines(models)

    lines += settings_lines(models, table)

    stages = [(name, f"{benchmark_seconds(path):.1f}") for name, path in data_benchmarks.items()]
    lines += ["", "## Data stages", "", *markdown_table(pd.DataFrame(stages, columns=["step", "time (s)"]))]

    lines += ["", "## Training curves", ""]
    for model in models:
        lines.append(f"![{model['device']} {model_name(model)}]({rel(model['curve_png'])})")
    lines += ["", f"Every model is a row of `{Path(metrics_tsv).name}`.", ""]
    lines += run_lines(
        list(data_benchmarks.values()) + [model["train_benchmark"] for model in models],
        config or {},
        repository,
    )
    with atomic_open(out_md, "w") as handle:
        handle.write("\n".join(lines))
    log.info("report: %d models, %s", len(models), out_md)

"""Pictures of what the attention units look at: test videos with each unit's weights over the frames."""

import logging

import numpy as np

from .atomic import atomic_open, atomic_path
from .flash_mnist import digits_of
from .npy_stream import load_npy

log = logging.getLogger("attention_clusters")
# One video each of a label with one, two, three and ten digits.
PICTURE_LABELS = (1 << 3, (1 << 1) | (1 << 7), (1 << 0) | (1 << 4) | (1 << 9), 1023)


def attention_weights(model, features):
    """(N, L, n) attention weights of `model` for (N, L, F) features, through graph mode."""
    import mindspore as ms

    from .model import inspection_cell

    weights, _, _ = inspection_cell(model)(ms.Tensor(np.ascontiguousarray(features, np.float32)))
    return weights.asnumpy()


def draw_attention(videos, frame_digits, labels, weights, title, out_png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_videos, frames = frame_digits.shape
    natt = weights.shape[2]
    fig, axes = plt.subplots(
        2 * n_videos,
        1,
        figsize=(12, n_videos * (0.9 + min(natt, 32) * 0.09 + 0.6)),
        gridspec_kw={"height_ratios": [1, max(1.0, min(natt, 32) / 8)] * n_videos},
    )
    for v in range(n_videos):
        strip = np.concatenate(list(videos[v]), axis=1)
        top, bottom = axes[2 * v], axes[2 * v + 1]
        top.imshow(strip, cmap="gray", vmin=0, vmax=255, aspect="equal")
        for t in range(frames):
            if frame_digits[v, t] >= 0:
                top.add_patch(plt.Rectangle((t * 28 - 0.5, -0.5), 28, 28, fill=False, ec="tab:red", lw=1.5))
                top.text(
                    t * 28 + 14,
                    -3,
                    str(frame_digits[v, t]),
                    ha="center",
                    va="bottom",
                    color="tab:red",
                    fontsize=8,
                )
        top.set_axis_off()
        top.set_title(
            f"label {labels[v]}: digits {digits_of(int(labels[v]))}; attention weights below "
            f"(dark 0, bright {weights[v].max():.2f})",
            fontsize=9,
            loc="left",
            pad=12,
        )
        # Same x extent as the strip (one frame = 28 pixels), so each weight sits under its frame.
        bottom.imshow(
            weights[v].T,
            aspect="auto",
            cmap="viridis",
            vmin=0,
            interpolation="nearest",
            extent=(-0.5, frames * 28 - 0.5, natt - 0.5, -0.5),
        )
        bottom.set_xlim(top.get_xlim())
        bottom.set_ylabel("unit", fontsize=8)
        bottom.set_xticks([t * 28 + 13.5 for t in range(frames)], [str(t) for t in range(frames)])
        bottom.tick_params(labelsize=6)
    axes[-1].set_xlabel("frame (red boxes: frames showing a digit)")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def write_attention_picture(
    checkpoint, fc, natt, attention, *, features_pkl, videos_npy, frame_digits_npy, title, out_png, out_npz
):
    from .features import load_features
    from .model import load_model

    feats, labels, _ = load_features(features_pkl)
    chosen = np.array([int(np.nonzero(labels == label)[0][0]) for label in PICTURE_LABELS])
    model = load_model(checkpoint, fc, natt, attention, feats.shape[2], feats.shape[1])
    weights = attention_weights(model, feats[chosen])
    videos = load_npy(videos_npy, mmap_mode="r")[chosen]
    frame_digits = load_npy(frame_digits_npy)[chosen]
    draw_attention(videos, frame_digits, labels[chosen], weights, title, out_png)
    with atomic_open(out_npz) as handle:
        np.savez(
            handle, weights=weights, video_index=chosen, labels=labels[chosen], frame_digits=frame_digits
        )
    log.info("attention picture of %s for test videos %s", checkpoint, chosen.tolist())


def one_digit_confusion(predictions, labels):
    """Among wrong predictions that differ from the label in exactly one digit: per digit, how often
    it was missed (in the label, not predicted) and how often it was added (predicted, not in the label)."""
    predictions, labels = np.asarray(predictions, np.int64), np.asarray(labels, np.int64)
    wrong = predictions != labels
    diff = predictions ^ labels
    one = wrong & (diff & (diff - 1) == 0)
    missed = np.zeros(10, np.int64)
    added = np.zeros(10, np.int64)
    for d in range(10):
        bit = 1 << d
        missed[d] = int((one & (diff == bit) & (labels & bit > 0)).sum())
        added[d] = int((one & (diff == bit) & (predictions & bit > 0)).sum())
    return {"wrong": int(wrong.sum()), "one_digit": int(one.sum()), "missed": missed, "added": added}


def digit_attention(weights, frame_digits):
    """Where the units look, per digit: (share (10,), noise share) with share[d] the mean weight of a
    frame showing digit d and `noise share` that of a noise frame, both times the frame count L (1:
    a uniform unit's weight), averaged over the units. A digit near the noise's share is one the
    network does not see; near L / (frames showing it), one that a unit looks at alone."""
    frames = frame_digits.shape[1]
    per_frame = weights.mean(axis=2) * frames  # (N, L): mean over the units, x L
    share = np.array(
        [per_frame[frame_digits == d].mean() if (frame_digits == d).any() else np.nan for d in range(10)]
    )
    return share, float(per_frame[frame_digits < 0].mean())


def digit_recall(predictions, labels):
    """(recall (10,), false positives (10,)): per digit, the share of videos showing it whose predicted
    label has it, and the share of videos not showing it whose predicted label has it."""
    predictions, labels = np.asarray(predictions, np.int64), np.asarray(labels, np.int64)
    recall, false = np.zeros(10), np.zeros(10)
    for d in range(10):
        shown, said = (labels >> d & 1) == 1, (predictions >> d & 1) == 1
        recall[d] = said[shown].mean() if shown.any() else np.nan
        false[d] = said[~shown].mean() if (~shown).any() else np.nan
    return recall, false


def main(argv=None):
    """python -m attention_clusters.attention_pictures FEATURES FRAME_DIGITS FC NATT CHECKPOINT...:
    per checkpoint, its top-1 on the videos and per digit its attention share and recall."""
    import argparse

    from .devices import use_device
    from .features import load_features
    from .metrics import evaluate
    from .model import load_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("features")
    parser.add_argument("frame_digits", help="the videos' frame_digits.npy (results/data/flash_<split>/)")
    parser.add_argument("fc", type=int)
    parser.add_argument("natt", type=int)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--attention", default="shift")
    parser.add_argument("--every", type=int, default=1, help="use every n-th video")
    args = parser.parse_args(argv)
    use_device("CPU", 2)
    feats, labels, _ = load_features(args.features)
    feats, labels = feats[:: args.every], labels[:: args.every]
    frame_digits = load_npy(args.frame_digits)[:: args.every]
    header = [
        "checkpoint",
        "top1",
        *(f"share{d}" for d in range(10)),
        "noise",
        *(f"recall{d}" for d in range(10)),
    ]
    print("\t".join(header))
    for path in args.checkpoints:
        model = load_model(path, args.fc, args.natt, args.attention, feats.shape[2], feats.shape[1])
        top1, _, predictions = evaluate(model, feats, labels)
        share, noise = digit_attention(attention_weights(model, feats), frame_digits)
        recall, _ = digit_recall(predictions, labels)
        cells = [
            path,
            f"{top1:.4f}",
            *(f"{v:.2f}" for v in share),
            f"{noise:.2f}",
            *(f"{v:.2f}" for v in recall),
        ]
        print("\t".join(cells))


if __name__ == "__main__":
    main()

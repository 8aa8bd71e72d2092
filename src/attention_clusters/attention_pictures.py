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
    checkpoint, fc, natt, attention, features_pkl, videos_npy, frame_digits_npy, title, out_png, out_npz
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

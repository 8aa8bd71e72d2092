import numpy as np
import pytest
from conftest import labels_from_bits

from attention_clusters import WorkflowInputError
from attention_clusters.constants import N_CLASSES
from attention_clusters.flash_mnist import digits_of, write_flash_mnist
from attention_clusters.noise import NoiseSampler, pixel_histogram
from attention_clusters.noisy_mnist import NOISE_CLASS, write_noisy_mnist
from attention_clusters.pools import digit_pool, validation_indices


def test_sampler_follows_histogram():
    counts = np.zeros(256, np.int64)
    counts[[0, 10, 200, 255]] = [700, 100, 150, 50]
    sampler = NoiseSampler(counts)
    draws = sampler.sample(np.random.default_rng(0), (400_000,))
    freq = np.bincount(draws, minlength=256) / draws.size
    assert set(np.nonzero(freq)[0]) == {0, 10, 200, 255}
    assert np.allclose(freq[[0, 10, 200, 255]], [0.7, 0.1, 0.15, 0.05], atol=0.003)
    again = sampler.sample(np.random.default_rng(0), (400_000,))
    assert np.array_equal(draws, again)


def test_noisy_mnist(tmp_path, tiny_mnist):
    images, labels = tiny_mnist["test_images"], tiny_mnist["test_labels"]
    sampler = NoiseSampler(pixel_histogram(images))
    write_noisy_mnist(
        images,
        labels,
        sampler,
        repeats=3,
        noise_count=20,
        seed=5,
        split="test",
        images_out=tmp_path / "i.npy",
        labels_out=tmp_path / "l.npy",
        chunk=70,
    )
    out, out_labels = np.load(tmp_path / "i.npy"), np.load(tmp_path / "l.npy")
    assert out.shape == (320, 28, 28) and out.dtype == np.uint8
    assert np.array_equal(out_labels[:300], np.tile(labels, 3)) and (out_labels[300:] == NOISE_CLASS).all()
    # A digit is put on noise by element-wise maximum: it is still all there.
    assert (out[:300] >= np.tile(images, (3, 1, 1))).all()
    assert (out[:100] != out[100:200]).any()  # fresh noise for each repeat


@pytest.fixture
def marked_mnist():
    """Images that say which digit and which image they are, on all-zero noise."""
    labels = np.repeat(np.arange(10, dtype=np.uint8), 5)
    images = np.zeros((50, 28, 28), np.uint8)
    images[np.arange(50), 0, labels] = 255  # digit marker
    images[np.arange(50), 1, np.arange(50) % 28] = 1 + np.arange(50) // 28  # image id marker
    zero_noise = np.zeros(256, np.int64)
    zero_noise[0] = 1
    return images, labels, NoiseSampler(zero_noise)


def test_flash_semantics(tmp_path, marked_mnist):
    images, labels, sampler = marked_mnist
    repeats, frames = 3, 25
    write_flash_mnist(
        images,
        labels,
        sampler,
        repeats=repeats,
        frames=frames,
        min_appear=1,
        max_appear=2,
        seed=11,
        split="train",
        videos_out=tmp_path / "v.npy",
        labels_out=tmp_path / "l.npy",
        frame_digits_out=tmp_path / "d.npy",
    )
    videos, video_labels, frame_digits = (np.load(tmp_path / n) for n in ("v.npy", "l.npy", "d.npy"))
    assert videos.shape == (N_CLASSES * repeats, frames, 28, 28)
    # Classes balanced and label-sorted.
    assert np.array_equal(np.bincount(video_labels), np.full(N_CLASSES, repeats))
    assert (np.diff(video_labels) >= 0).all()
    # Which digit each frame shows, read back from the pixels.
    shown = np.where(videos[:, :, 0, :10].max(axis=2) > 0, videos[:, :, 0, :10].argmax(axis=2), -1)
    assert np.array_equal(shown, frame_digits)
    assert np.array_equal(labels_from_bits(frame_digits), video_labels)
    for video in range(0, len(video_labels), 7):
        digits = digits_of(int(video_labels[video]))
        counts = np.bincount(frame_digits[video][frame_digits[video] >= 0], minlength=10)
        assert all(counts[d] in (1, 2) for d in digits)
        assert counts[[d for d in range(10) if d not in digits]].sum() == 0
        # A digit shown twice uses two different images.
        for d in digits:
            slots = np.nonzero(frame_digits[video] == d)[0]
            if slots.size == 2:
                assert not np.array_equal(videos[video, slots[0]], videos[video, slots[1]])
    # Both 1 and 2 appearances happen, and positions vary (the frames are shuffled).
    all_counts = [
        (frame_digits[v] == d).sum()
        for v in range(len(video_labels))
        for d in digits_of(int(video_labels[v]))
    ]
    assert set(all_counts) == {1, 2}
    # Where digit 0 first flashes, over the 1,536 videos that show it: spread over the 25 frames.
    assert len({int(np.nonzero(frame_digits[v] == 0)[0][0]) for v in np.nonzero(video_labels & 1)[0]}) > 10
    # Label 0 is all noise.
    assert (frame_digits[video_labels == 0] == -1).all()


def test_flash_on_noise_is_reproducible(tmp_path, tiny_mnist):
    images, labels = tiny_mnist["test_images"], tiny_mnist["test_labels"]
    sampler = NoiseSampler(pixel_histogram(images))
    for name in ("a", "b"):
        write_flash_mnist(
            images,
            labels,
            sampler,
            repeats=1,
            frames=25,
            min_appear=1,
            max_appear=2,
            seed=3,
            split="test",
            videos_out=tmp_path / f"{name}v.npy",
            labels_out=tmp_path / f"{name}l.npy",
            frame_digits_out=tmp_path / f"{name}d.npy",
        )
    assert (tmp_path / "av.npy").read_bytes() == (tmp_path / "bv.npy").read_bytes()
    videos, digits = np.load(tmp_path / "av.npy"), np.load(tmp_path / "ad.npy")
    assert videos[digits == -1].mean() < videos[digits >= 0].mean()


def test_flash_needs_enough_images(tmp_path, marked_mnist):
    images, labels, sampler = marked_mnist
    keep = labels != 3
    keep[np.nonzero(labels == 3)[0][0]] = True  # one image of digit 3 only
    with pytest.raises(WorkflowInputError, match=r"digits \[3\] have fewer than 2 images"):
        write_flash_mnist(
            images[keep],
            labels[keep],
            sampler,
            repeats=1,
            frames=25,
            min_appear=1,
            max_appear=2,
            seed=1,
            split="test",
            videos_out=tmp_path / "v.npy",
            labels_out=tmp_path / "l.npy",
            frame_digits_out=tmp_path / "d.npy",
        )
    assert not any(tmp_path.iterdir())


def test_digit_pools_hold_out_a_share_of_each_digit_for_validation(tiny_mnist):
    labels = tiny_mnist["train_labels"]
    held = validation_indices(labels, 0.1, 3)
    for digit in range(10):
        count = int((labels == digit).sum())
        assert int((labels[held] == digit).sum()) == max(1, round(0.1 * count))
    assert np.array_equal(held, validation_indices(labels, 0.1, 3))  # the data seed decides
    assert not np.array_equal(held, validation_indices(labels, 0.1, 4))
    rest = np.setdiff1d(np.arange(labels.size), held)
    train_images, train_labels = digit_pool(tiny_mnist, "train", 0.1, 3)
    val_images, val_labels = digit_pool(tiny_mnist, "val", 0.1, 3)
    assert np.array_equal(val_images, tiny_mnist["train_images"][held]) and np.array_equal(
        val_labels, labels[held]
    )
    assert np.array_equal(train_images, tiny_mnist["train_images"][rest])
    assert np.array_equal(train_labels, labels[rest])
    test_images, test_labels = digit_pool(tiny_mnist, "test", 0.1, 3)
    assert test_images is tiny_mnist["test_images"] and test_labels is tiny_mnist["test_labels"]
    with pytest.raises(WorkflowInputError, match="leaves no training digits"):
        digit_pool({"train_images": train_images[:10], "train_labels": np.arange(10)}, "train", 0.5, 3)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_each_split_of_videos_and_noisy_images_draws_from_its_own_pool(
    tmp_path, tiny_mnist, monkeypatch, split
):
    from attention_clusters import flash_mnist, noisy_mnist, steps
    from attention_clusters.idx import write_idx

    paths = {key: tmp_path / f"{key}.gz" for key in tiny_mnist}
    for key, array in tiny_mnist.items():
        write_idx(paths[key], array)
    np.save(tmp_path / "histogram.npy", pixel_histogram(tiny_mnist["test_images"]))
    drawn = {}
    monkeypatch.setattr(
        flash_mnist, "write_flash_mnist", lambda images, *rest, **named: drawn.setdefault("flash", images)
    )
    monkeypatch.setattr(
        noisy_mnist, "write_noisy_mnist", lambda images, *rest, **named: drawn.setdefault("noisy", images)
    )
    common = dict(histogram=tmp_path / "histogram.npy", split=split, repeats=1, val_fraction=0.1, seed=3)
    outputs = dict(videos_out=None, labels_out=None, frame_digits_out=None)
    steps.flash_mnist(**paths, **common, frames=25, min_appearances=1, max_appearances=2, **outputs)
    if split != "val":  # the extractor's data has no validation split: it never sees those digits
        steps.noisy_mnist(**paths, **common, noise_count=0, images_out=None, labels_out=None)
    pool = digit_pool(tiny_mnist, split, 0.1, 3)[0]
    assert all(np.array_equal(images, pool) for images in drawn.values()) and len(drawn) == 1 + (
        split != "val"
    )

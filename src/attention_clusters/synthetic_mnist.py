"""A synthetic stand-in for MNIST, rendered with OpenCV's fonts.

It lets the whole workflow run without a network. Each digit is drawn in one of
OpenCV's Hershey fonts with random scale, stroke width, slant, rotation and a
smooth random distortion, then fitted into a 20x20 box and centred by its centre
of mass in a 28x28 frame, as MNIST's digits were.
"""

import cv2
import numpy as np

from .idx import write_idx

FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
CANVAS = 64


def render_digit(digit, rng):
    """One 28x28 uint8 image of `digit` (white on black), drawn with random style."""
    font = FONTS[rng.integers(len(FONTS))]
    scale = rng.uniform(1.4, 2.0)
    thickness = int(rng.integers(2, 7))
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    (width, height), _ = cv2.getTextSize(str(digit), font, scale, thickness)
    origin = ((CANVAS - width) // 2, (CANVAS + height) // 2)
    cv2.putText(canvas, str(digit), origin, font, scale, 255, thickness, cv2.LINE_AA)

    # Random rotation, slant and scale about the centre, then a smooth displacement field.
    angle = rng.uniform(-15, 15)
    shear = rng.uniform(-0.3, 0.3)
    affine = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), angle, rng.uniform(0.85, 1.1))
    affine[0, 1] += shear
    affine[0, 2] -= shear * CANVAS / 2
    canvas = cv2.warpAffine(canvas, affine, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)
    field = rng.normal(0, 1, (2, 6, 6)).astype(np.float32) * rng.uniform(0.5, 2.5)
    dx, dy = (cv2.resize(f, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC) for f in field)
    grid_x, grid_y = np.meshgrid(np.arange(CANVAS, dtype=np.float32), np.arange(CANVAS, dtype=np.float32))
    canvas = cv2.remap(canvas, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR)

    # MNIST: fit the ink's bounding box into 20x20, then centre the mass in 28x28.
    ys, xs = np.nonzero(canvas)
    if ys.size == 0:
        return np.zeros((28, 28), np.uint8)
    crop = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    factor = 20.0 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    image = np.zeros((28, 28), np.uint8)
    moments = cv2.moments(crop)
    cy = moments["m01"] / moments["m00"] if moments["m00"] else crop.shape[0] / 2
    cx = moments["m10"] / moments["m00"] if moments["m00"] else crop.shape[1] / 2
    top = int(np.clip(round(14 - cy), 0, 28 - crop.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - crop.shape[1]))
    image[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return image


def make_split(count, seed, split_id):
    """`count` images with balanced, shuffled labels; reproducible from (seed, split_id)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_id,)))
    labels = np.resize(np.arange(10, dtype=np.uint8), count)
    rng.shuffle(labels)
    images = (
        np.stack([render_digit(int(d), rng) for d in labels]) if count else np.zeros((0, 28, 28), np.uint8)
    )
    return images, labels


def write_synthetic_mnist(out_paths, n_train, n_test, seed):
    """Write the four IDX `.gz` files of a synthetic MNIST; `out_paths` as in idx.load_mnist."""
    for split_id, (split, count) in enumerate((("train", n_train), ("test", n_test))):
        images, labels = make_split(count, seed, split_id)
        write_idx(out_paths[f"{split}_images"], images)
        write_idx(out_paths[f"{split}_labels"], labels)

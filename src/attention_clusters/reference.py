"""Reference top-1 accuracies (%) at 200 epochs: the ModelZoo's README and the paper (Flash-MNIST)."""

# (fc, natt) -> (lr, weight decay, Ascend 910 top-1, RTX 3090 GPU top-1), from the MindSpore README.
MODELZOO = {
    (1, 1): (1e-4, 0, 34.5, 31.8),
    (1, 2): (1e-4, 0, 65.8, 19.4),
    (1, 4): (1e-4, 0, 72.7, 37.8),
    (1, 8): (1e-4, 0, 80.5, 65.0),
    (1, 16): (5e-4, 1e-4, 84.6, 84.3),
    (1, 32): (5e-4, 1e-4, 84.7, 85.3),
    (1, 64): (5e-4, 1e-4, 85.0, 86.0),
    (1, 128): (5e-4, 1e-4, 85.2, 86.1),
    (2, 1): (1e-4, 0, 54.1, 40.3),
    (2, 2): (1e-4, 0, 64.7, 41.3),
    (2, 4): (1e-4, 0, 73.8, 53.1),
    (2, 8): (5e-4, 1e-4, 76.4, 81.6),
    (2, 16): (5e-4, 1e-4, 86.6, 85.5),
    (2, 32): (5e-4, 1e-4, 87.0, 87.6),
    (2, 64): (5e-4, 1e-4, 87.3, 88.1),
    (2, 128): (5e-4, 1e-4, 87.4, 88.3),
}

# natt -> (Average, FC1 no shift, FC2 no shift, FC1 shift, FC2 shift), from the paper's table.
PAPER = {
    1: (0.2, 0.2, 0.2, 51.2, 53.7),
    2: (0.4, 0.4, 0.5, 64.8, 66.8),
    4: (0.6, 2.2, 2.3, 75.9, 76.8),
    8: (0.9, 31.7, 22.5, 80.6, 83.1),
    16: (1.2, 82.3, 82.0, 86.9, 84.9),
    32: (2.4, 83.3, 83.2, 87.1, 85.6),
    64: (5.0, 83.2, 82.4, 87.1, 85.6),
    128: (8.9, 81.8, 80.9, 87.1, 85.7),
}

PAPER_COLUMNS = (
    ("average", None, 0, "Average"),
    ("noshift", 1, 1, "FC1 no shift"),
    ("noshift", 2, 2, "FC2 no shift"),
    ("shift", 1, 3, "FC1 shift"),
    ("shift", 2, 4, "FC2 shift"),
)


def paper_reference(attention, fc, natt):
    """The paper's top-1 (%) for this kind of attention, weighting function and number of units."""
    row = PAPER.get(natt)
    if row is None:
        return None
    for kind, column_fc, index, _ in PAPER_COLUMNS:
        if kind == attention and (column_fc is None or column_fc == fc):
            return row[index]
    return None


def reference_to_pass(attention, fc, natt):
    """(top-1 %, what it is) that a row should reach: for the paper's network (shift) the best of
    the ModelZoo's Ascend and GPU columns and the paper's; for an ablation, the paper's column;
    (None, None) where neither has the row."""
    paper = paper_reference(attention, fc, natt)
    modelzoo = MODELZOO.get((fc, natt)) if attention == "shift" else None
    if modelzoo is None:
        return (paper, "the paper's") if paper is not None else (None, None)
    candidates = [(modelzoo[2], "ModelZoo Ascend"), (modelzoo[3], "ModelZoo GPU")]
    if paper is not None:
        candidates.append((paper, "the paper's"))
    return max(candidates)

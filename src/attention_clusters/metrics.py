"""Top-k accuracy of a model's logits."""

import numpy as np

from .constants import TOPK


def topk_correct(logits, labels, k=TOPK):
    """(top-1 hits, top-k hits) for a batch of logits (N, classes) and labels (N,)."""
    top = np.argpartition(-logits, k, axis=1)[:, :k] if logits.shape[1] > k else np.argsort(-logits, axis=1)
    best = logits.argmax(axis=1)
    return int((best == labels).sum()), int((top == labels[:, None]).any(axis=1).sum())


def evaluate(model, features, labels, batch_size=1024):
    """top-1, top-5 accuracy and the predictions of `model` (eval mode) on in-memory features
    (N, L, F) with labels (N,)."""
    import mindspore as ms

    model.set_train(False)
    top1 = top5 = 0
    predictions = np.empty(labels.shape[0], np.int64)
    for start in range(0, labels.shape[0], batch_size):
        logits = model(ms.Tensor(features[start : start + batch_size])).asnumpy()
        hit1, hit5 = topk_correct(logits, labels[start : start + batch_size])
        top1, top5 = top1 + hit1, top5 + hit5
        predictions[start : start + batch_size] = logits.argmax(axis=1)
    n = max(1, labels.shape[0])
    return top1 / n, top5 / n, predictions

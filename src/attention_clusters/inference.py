"""Export to MINDIR and the ModelZoo's 310 inference chain: preprocess, infer, postprocess.

File formats are the ModelZoo's: the test features as one raw little-endian float32 file
(N x 25 x 50), the labels as raw float32 (N), the logits as raw float32 (N x 1024).
`infer` runs the exported MINDIR through MindSpore's loader on the configured device:
the CPU here; on an Ascend host the same code targets the Ascend device.
"""

import json
import logging
import time
from pathlib import Path

import numpy as np

from . import WorkflowInputError
from .atomic import atomic_open, atomic_path
from .bookkeeping import read_json
from .constants import N_CLASSES, TOPK
from .metrics import topk_correct
from .npy_stream import load_npy
from .progress import Progress

log = logging.getLogger("attention_clusters")


def export_mindir(checkpoint, fc, natt, attention, batch_size, frames, feature_dim, out):
    """Export the model of `checkpoint` to MINDIR with input (batch_size, frames, feature_dim); batch_size
    None exports a dynamic batch dimension (any batch runs; the ModelZoo hard-coded 10,240)."""
    import mindspore as ms

    from .model import load_model

    model = load_model(checkpoint, fc, natt, attention, feature_dim, frames)
    if batch_size is None:
        example = ms.Tensor(shape=[None, frames, feature_dim], dtype=ms.float32)
    else:
        example = ms.Tensor(np.zeros((batch_size, frames, feature_dim), np.float32))
    out = Path(out)
    with atomic_path(out) as tmp:
        stem = tmp.with_name(tmp.name + "-export")
        ms.export(model, example, file_name=str(stem), file_format="MINDIR")
        exported = stem.with_suffix(stem.suffix + ".mindir")
        tmp.write_bytes(without_compile_phase(exported.read_bytes()))
        exported.unlink()
    log.info(
        "exported %s (input %s x %d x %d) to %s", checkpoint, batch_size or "any", frames, feature_dim, out
    )


def without_compile_phase(mindir):
    """The MINDIR's bytes made reproducible: MindSpore writes into its graphs' `compile_phase` attribute
    a name made of a clock reading and an object's address, and lists the primitives in a varying
    order, so the same checkpoint exported twice gave different files. The attribute becomes a
    constant (nothing reads it back when the model is loaded) and the primitives are sorted by name."""
    from mindspore.train import mind_ir_pb2

    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(mindir)
    for graph in [model.graph, *model.functions]:
        for attribute in graph.attribute:
            if attribute.name == "compile_phase":
                attribute.s = b"export.mindir" if isinstance(attribute.s, bytes) else "export.mindir"
    # The primitives are listed in an order that changes from run to run; nodes name them.
    primitives = sorted((copy_message(p) for p in model.primitives), key=lambda p: p.name)
    del model.primitives[:]
    model.primitives.extend(primitives)
    return model.SerializeToString(deterministic=True)


def copy_message(message):
    twin = type(message)()
    twin.CopyFrom(message)
    return twin


def preprocess(features_pkl, features_bin_out, labels_bin_out, frames):
    """Test features and labels to the ModelZoo's two raw float32 files; every video must have `frames` frames."""
    from .features import load_features

    feats, labels, _ = load_features(features_pkl, frames)
    with atomic_open(features_bin_out) as handle:
        handle.write(np.ascontiguousarray(feats, "<f4").tobytes())
    with atomic_open(labels_bin_out) as handle:
        handle.write(labels.astype("<f4").tobytes())
    log.info("preprocessed %d videos of shape %s", labels.shape[0], feats.shape[1:])


def read_raw(path, row_shape, what):
    """A raw float32 file as (N,) + row_shape; an error names the file if its size does not fit."""
    path = Path(path)
    if not path.exists():
        raise WorkflowInputError(f"{path}: {what} file is missing")
    row_bytes = 4 * int(np.prod(row_shape))
    size = path.stat().st_size
    if size == 0 or size % row_bytes:
        raise WorkflowInputError(
            f"{path}: {size} bytes is not a whole number of {what} rows of {row_shape} float32 ({row_bytes} bytes)"
        )
    return np.fromfile(path, dtype="<f4").reshape((-1,) + tuple(row_shape))


def load_mindir(path):
    import mindspore as ms
    from mindspore import nn

    path = Path(path)
    if not path.exists():
        raise WorkflowInputError(f"{path}: MINDIR file is missing")
    try:
        graph = ms.load(str(path))
    except Exception as err:  # MindSpore raises RuntimeError/ValueError for damaged files
        raise WorkflowInputError(
            f"{path}: not a readable MINDIR model ({type(err).__name__}: {err})"
        ) from err
    return nn.GraphCell(graph)


def infer(
    mindir,
    features_bin,
    batch_size,
    frames,
    feature_dim,
    logits_bin,
    timing_json,
    *,
    fixed_batch=False,
    labels_bin=None,
):
    """Run the MINDIR over the raw input file in batches of `batch_size`; write raw logits and timings.
    With `fixed_batch` (a MINDIR exported for exactly that batch) the last batch is padded. With
    `labels_bin` (written beside the features by preprocess), the two files must hold as many videos."""
    import mindspore as ms

    cell = load_mindir(mindir)
    features = read_raw(features_bin, (frames, feature_dim), "feature")
    total = features.shape[0]
    if labels_bin is not None:
        labels = read_raw(labels_bin, (), "label")
        if labels.shape[0] != total:
            raise WorkflowInputError(
                f"{features_bin}: {total} videos of features for {labels.shape[0]} labels in {labels_bin} "
                "(preprocess writes both together): one of them is truncated; delete both and rerun"
            )
    latencies = []
    progress = Progress("infer", total, "videos")
    with atomic_open(logits_bin) as handle:
        for start in range(0, total, batch_size):
            batch = features[start : start + batch_size]
            n = batch.shape[0]
            if fixed_batch and n < batch_size:  # the MINDIR's input shape is fixed: pad the last batch
                batch = np.concatenate([batch, np.zeros((batch_size - n, frames, feature_dim), np.float32)])
            started = time.perf_counter()
            try:
                logits = cell(ms.Tensor(batch)).asnumpy()
            except (RuntimeError, ValueError, TypeError) as err:
                raise WorkflowInputError(
                    f"{mindir}: the model does not accept input batches of "
                    f"{batch.shape} from {features_bin} ({err})"
                ) from err
            latencies.append(time.perf_counter() - started)
            handle.write(np.ascontiguousarray(logits[:n], "<f4").tobytes())
            progress.update(n)
    seconds = float(sum(latencies))
    # The first call includes MindSpore's graph compilation; the steady-state latency excludes it.
    steady = latencies[1:] or latencies
    timing = {
        "videos": total,
        "batch_size": batch_size,
        "batches": len(latencies),
        "total_seconds": seconds,
        "first_batch_ms": latencies[0] * 1e3,
        "latency_ms_per_batch": 1e3 * float(np.mean(steady)),
        "latency_ms_per_video": 1e3 * float(np.mean(steady)) / batch_size,
        "videos_per_second": batch_size / float(np.mean(steady)),
    }
    with atomic_open(timing_json, "w") as handle:
        json.dump(timing, handle, indent=2)
    log.info(
        "inference: %d videos, %.2f ms per batch of %d, %.0f videos/s",
        total,
        timing["latency_ms_per_batch"],
        batch_size,
        timing["videos_per_second"],
    )


def postprocess(logits_bin, labels_bin, timing_json, eval_predictions, out):
    """top-1 / top-5 from the raw logits and labels, beside the latency, and agreement with eval."""
    logits = read_raw(logits_bin, (N_CLASSES,), "logits")
    labels = read_raw(labels_bin, (), "label").astype(np.int64)
    if logits.shape[0] != labels.shape[0]:
        raise WorkflowInputError(
            f"{logits_bin}: {logits.shape[0]} rows of logits for {labels.shape[0]} labels in {labels_bin}"
        )
    top1, top5 = topk_correct(logits, labels, TOPK)
    predictions = logits.argmax(axis=1)
    reference = load_npy(eval_predictions)
    timing = read_json(timing_json, numbers=("latency_ms_per_batch", "videos_per_second", "batch_size"))
    result = {
        "top1": top1 / labels.size,
        "top5": top5 / labels.size,
        "videos": int(labels.size),
        "agrees_with_eval": bool(np.array_equal(predictions, reference)),
        "disagreements": int((predictions != reference).sum()),
        **timing,
    }
    with atomic_open(out, "w") as handle:
        json.dump(result, handle, indent=2)
    log.info(
        "acc: %.4f (top-5 %.4f); predictions %s eval's",
        result["top1"],
        result["top5"],
        "equal" if result["agrees_with_eval"] else f"differ in {result['disagreements']} videos from",
    )

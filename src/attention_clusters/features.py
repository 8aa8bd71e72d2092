"""Frame features: extracted from videos by the pre-trained extractor, and kept in feature pickles,
the ModelZoo's interchange format, written as a stream and read safely.

Extraction: every frame of a (N, frames, 28, 28) video file through the extractor in eval mode,
a chunk of videos at a time, to (N, frames, 50) float32.

Format: a pickled tuple (feats, labels, indexes) with feats a list of N float32
(frames, 50) arrays, labels N ints in [0, 1024) and indexes N ids, label-sorted.

Writing: pickle's own Pickler needs the whole list in memory (about 0.5 GB at paper
scale). Instead the outer tuple and lists are written opcode by opcode and each array
is pickled on its own (protocol 3, whose memo uses explicit indices, so every
array's pickle is self-contained), chunk by chunk. `pickle.load(f, encoding='bytes')`
reads the result as if the whole tuple had been pickled at once.

Reading: `load_features` accepts only the globals that numpy arrays and scalars
need; a pickle that names anything else (os.system, eval, ...) is refused.
"""

import io
import pickle
import struct

import numpy as np

from . import WorkflowInputError
from .atomic import atomic_open
from .constants import FEATURE_DIM, N_CLASSES
from .progress import Progress

PROTOCOL = 3


class FeaturePickleWriter:
    """Streams `(feats, labels, indexes)` to an open binary file."""

    def __init__(self, handle):
        self.handle = handle
        self.labels, self.indexes = [], []
        handle.write(pickle.PROTO + bytes([PROTOCOL]))
        handle.write(pickle.EMPTY_LIST)

    def add(self, features, labels, indexes):
        """Append a chunk: features (n, frames, 50) float32, labels (n,), indexes (n,)."""
        if len(features) == 0:
            return
        body = io.BytesIO()
        for array in features:
            data = pickle.dumps(np.ascontiguousarray(array, np.float32), protocol=PROTOCOL)
            body.write(data[2:-1])  # drop this array's own PROTO header and STOP
        self.handle.write(pickle.MARK + body.getvalue() + pickle.APPENDS)
        self.labels.extend(int(x) for x in labels)
        self.indexes.extend(int(x) for x in indexes)

    @staticmethod
    def _int_list(values):
        out = bytearray(pickle.EMPTY_LIST)
        for start in range(0, len(values), 1000):
            out += pickle.MARK
            for value in values[start : start + 1000]:
                out += pickle.BININT + struct.pack("<i", value)
            out += pickle.APPENDS
        return bytes(out)

    def close(self):
        self.handle.write(self._int_list(self.labels))
        self.handle.write(self._int_list(self.indexes))
        self.handle.write(pickle.TUPLE3 + pickle.STOP)


def write_features(path, chunks):
    """Write an iterable of (features, labels, indexes) chunks to `path`, atomically."""
    with atomic_open(path) as handle:
        writer = FeaturePickleWriter(handle)
        for features, labels, indexes in chunks:
            writer.add(features, labels, indexes)
        writer.close()


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the allowed list."""


class _ArrayOnlyUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 2 era pickles store array bytes as latin-1 text re-encoded by _codecs.encode.
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise RefusedGlobal(f"global '{module}.{name}' is not allowed in a feature pickle")


def _unpickle(path):
    """(feats, labels, indexes) of a feature pickle: three lists of equal length, else one error."""
    try:
        with open(path, "rb") as handle:
            obj = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except RefusedGlobal as err:
        raise WorkflowInputError(f"{path}: refused: {err}") from err
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        struct.error,
        IndexError,
        KeyError,
    ) as err:
        raise WorkflowInputError(
            f"{path}: not a readable feature pickle ({type(err).__name__}: {err})"
        ) from err
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise WorkflowInputError(
            f"{path}: expected a tuple (feats, labels, indexes), got {type(obj).__name__}"
        )
    for name, part in zip(("feats", "labels", "indexes"), obj, strict=True):
        if not isinstance(part, (list, tuple, np.ndarray)) or (
            isinstance(part, np.ndarray) and part.ndim == 0
        ):
            raise WorkflowInputError(f"{path}: {name} is {type(part).__name__}, expected a list")
    feats, labels, indexes = obj
    if not (len(feats) == len(labels) == len(indexes)):
        raise WorkflowInputError(
            f"{path}: {len(feats)} features, {len(labels)} labels, {len(indexes)} indexes; expected equal counts"
        )
    return feats, labels, indexes


def load_features(path, frames=None, feature_dim=50):
    """Read and check a feature pickle; returns (features (N, frames, 50) float32, labels, indexes).

    Every video must have `frames` frames (or, when None, as many as the first) and finite values.

    Only numpy arrays, numbers, strings and containers are accepted; anything else is
    an error naming the file. The arrays are stacked into one array for training.
    """
    feats, labels, indexes = _unpickle(path)
    for position, array in enumerate(feats):
        frames = (
            array.shape[0] if frames is None and isinstance(array, np.ndarray) and array.ndim == 2 else frames
        )
        if (
            not isinstance(array, np.ndarray)
            or array.dtype.kind != "f"
            or array.ndim != 2
            or array.shape != (frames, feature_dim)
        ):
            raise WorkflowInputError(
                f"{path}: feature {position} is {getattr(array, 'dtype', type(array).__name__)} "
                f"{getattr(array, 'shape', '')}, expected float ({frames or 'L'}, {feature_dim})"
                + (" like the first" if position else "")
            )
    labels = np.asarray(labels)
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= N_CLASSES):
        raise WorkflowInputError(f"{path}: labels must be integers in [0, {N_CLASSES})")
    stacked = (
        np.stack(feats).astype(np.float32, copy=False)
        if feats
        else np.zeros((0, frames or 0, feature_dim), np.float32)
    )
    finite = np.isfinite(stacked).reshape(len(stacked), -1).all(axis=1)
    if not finite.all():
        raise WorkflowInputError(
            f"{path}: feature {int(np.flatnonzero(~finite)[0])} holds NaN or infinite values "
            f"({int((~finite).sum())} of {len(stacked)} videos)"
        )
    return stacked, labels.astype(np.int64), list(indexes)


def feature_function(net):
    """(B, 28, 28) uint8 -> (B, 50) float32 features, eval mode, as a NumPy function."""
    import mindspore as ms

    net.set_train(False)
    return lambda frames: net(ms.Tensor(frames)).asnumpy()


def extract_video_features(videos_npy, net, videos_per_chunk=200):
    """Yield (start, (n, frames, 50) float32) feature chunks for a (N, frames, 28, 28) .npy file."""
    from .npy_stream import iter_npy_chunks, npy_shape

    features = feature_function(net)
    (total, frames, _, _), _ = npy_shape(videos_npy)
    progress = Progress("extract_features", total * frames, "frames")
    for start, chunk in iter_npy_chunks(videos_npy, videos_per_chunk):
        n = chunk.shape[0]
        # Pad the last chunk so every call has the same shape (one compiled graph).
        if n < videos_per_chunk:
            chunk = np.concatenate([chunk, np.zeros((videos_per_chunk - n,) + chunk.shape[1:], np.uint8)])
        out = features(chunk.reshape(-1, 28, 28)).reshape(videos_per_chunk, frames, FEATURE_DIM)[:n]
        progress.update(n * frames)
        yield start, np.ascontiguousarray(out, dtype=np.float32)

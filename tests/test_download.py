import functools
import http.server
import threading

import pytest

from attention_clusters import WorkflowInputError
from attention_clusters.download import fetch_file, fetch_mnist, md5sum


@pytest.fixture
def mirror(tmp_path):
    directory = tmp_path / "mirror"
    directory.mkdir()
    (directory / "a.gz").write_bytes(b"payload-a")
    return directory


@pytest.fixture
def http_mirror(mirror):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_local_directory_and_file_url(tmp_path, mirror):
    md5 = md5sum(mirror / "a.gz")
    fetch_file("a.gz", md5, tmp_path / "out" / "a.gz", [str(mirror)])
    assert (tmp_path / "out" / "a.gz").read_bytes() == b"payload-a"
    fetch_file("a.gz", md5, tmp_path / "out2" / "a.gz", [mirror.as_uri()])
    assert (tmp_path / "out2" / "a.gz").read_bytes() == b"payload-a"


def test_http_after_failing_mirror(tmp_path, mirror, http_mirror):
    md5 = md5sum(mirror / "a.gz")
    # The first mirror refuses connections (nothing listens on port 9 here); the second serves.
    source = fetch_file(
        "a.gz", md5, tmp_path / "a.gz", ["http://127.0.0.1:9/", http_mirror], retries=2, timeout=5, backoff=0
    )
    assert source.startswith(http_mirror)
    assert (tmp_path / "a.gz").read_bytes() == b"payload-a"


def test_checksum_mismatch_names_file_and_sums_and_leaves_nothing(tmp_path, mirror, http_mirror):
    wrong = "0" * 32
    with pytest.raises(WorkflowInputError) as err:
        fetch_file("a.gz", wrong, tmp_path / "a.gz", [http_mirror], retries=2, backoff=0)
    message = str(err.value)
    assert "a.gz" in message and wrong in message and md5sum(mirror / "a.gz") in message
    assert list(tmp_path.iterdir()) == [tmp_path / "mirror"]


def test_missing_everywhere(tmp_path, mirror):
    with pytest.raises(WorkflowInputError, match="b.gz: could not be fetched from any mirror") as err:
        fetch_file("b.gz", "0" * 32, tmp_path / "b.gz", [str(mirror)], retries=2, backoff=0)
    # The error ends with what to do next without a network.
    assert str(err.value).endswith("or synthetic digits (--configfile config/quick.yaml)")
    assert "set config mnist.mirrors to it" in str(err.value) and "config/quick_real.yaml" in str(err.value)
    assert not (tmp_path / "b.gz").exists()


def test_fetch_mnist_by_config(tmp_path, mirror):
    (mirror / "b.gz").write_bytes(b"payload-b")
    files = {
        "one": {"name": "a.gz", "md5": md5sum(mirror / "a.gz")},
        "two": {"name": "b.gz", "md5": md5sum(mirror / "b.gz")},
    }
    out = {"one": tmp_path / "o" / "a.gz", "two": tmp_path / "o" / "b.gz"}
    fetch_mnist(files, out, [str(mirror)])
    assert out["two"].read_bytes() == b"payload-b"

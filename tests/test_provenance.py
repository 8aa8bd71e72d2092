"""Code digests (`attention_clusters.provenance`): what decides that a package edit reruns a job."""

from pathlib import Path

import pytest

from attention_clusters.provenance import code_digest, script_step

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "workflow/scripts").glob("*.py"))


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name != "runner.py"], ids=lambda s: s.stem)
def test_every_workflow_script_runs_a_step_with_a_digest(script):
    module, step = script_step(script)
    digest = code_digest(module, step)
    assert len(digest) == 16 and digest == code_digest(module, step)


def test_a_name_that_is_no_definition_is_an_error_not_a_constant_digest():
    assert code_digest("train", "train_models") != code_digest("train", "stack_batches")
    # A definition moved to another module is found there, and only there.
    assert len(code_digest("loop", "train_epoch")) == 16
    with pytest.raises(LookupError, match=r"train.train_epoch is not a definition of the package"):
        code_digest("train", "train_epoch")
    with pytest.raises(LookupError, match=r"train.train_modles is not a definition of the package"):
        code_digest("train", "train_modles")
    with pytest.raises(LookupError, match=r"no_module.f is not a definition"):
        code_digest("no_module", "f")

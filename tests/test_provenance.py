"""Code digests (`attention_clusters.provenance`): what decides that a package edit reruns a job."""

import shutil
from pathlib import Path

import pytest

from attention_clusters.provenance import code_digest, main, script_step, workflow_step_code

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


def test_the_command_prints_each_scripts_code_param(tmp_path, capsys):
    """`python -m attention_clusters.provenance`: a line per script, the rule's `code` param; an edit
    to the runner changes every step's, an edit to one step's script only that step's."""
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS[0].parent, scripts)
    main([str(scripts / "train_model.py"), str(scripts / "eval_model.py"), str(scripts / "runner.py")])
    before = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert sorted(before) == ["eval_model", "train_model"]
    assert before["train_model"] == workflow_step_code(scripts / "train_model.py", scripts / "runner.py")
    (scripts / "runner.py").write_text((scripts / "runner.py").read_text() + "\n# edited\n")
    main([str(scripts / "train_model.py"), str(scripts / "eval_model.py")])
    after = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert all(after[step] != before[step] for step in before)
    assert all(after[step].split("-")[0] == before[step].split("-")[0] for step in before)

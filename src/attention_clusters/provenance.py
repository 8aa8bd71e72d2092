"""Digests of what a result depends on: the package's own source code and input files.

`code_digest(module, symbol)` hashes the source of one definition of the package and of every
package definition it refers to, transitively (found by reading names and imports, including
those inside functions): a rule's `code` param and the resumable training state change exactly
when code that the step runs changes.
"""

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

from .pinning import pin_to_free_cores

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name


def _module_path(name):
    path = PACKAGE_DIR / (name.replace(".", "/") + ".py")
    return path if path.exists() else PACKAGE_DIR / name.replace(".", "/") / "__init__.py"


def file_hash(path, algorithm="sha256", block=1 << 22):
    """The hashlib object of `algorithm` over a file's content, read in blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest


def file_digest(path):
    """sha256 (hex) of a file's content."""
    return file_hash(path).hexdigest()


# --- Code digests at the level of definitions -------------------------------------------------
# A rule reruns when the code its step runs changes, and only then: the digest covers the step
# function's source and, transitively, the source of every package-level definition (function,
# class, constant) it refers to, found by reading names and imports in the source. An edit to
# AttentionCluster's code changes the digest of training but not of Flash-MNIST generation,
# although both modules import from the same files.


def _import_aliases(node):
    """{alias: (module, symbol)} that an import statement binds to package code; symbol None: a module."""
    if isinstance(node, ast.Import):
        return {
            alias.asname or alias.name: (alias.name[len(PACKAGE) + 1 :], None)
            for alias in node.names
            if alias.name.startswith(PACKAGE + ".")
        }
    if not isinstance(node, ast.ImportFrom):
        return {}
    if node.level:
        base = node.module or ""
    elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
        base = node.module[len(PACKAGE) + 1 :]
    else:
        return {}
    aliases = {}
    for alias in node.names:
        submodule = f"{base}.{alias.name}" if base else alias.name
        aliases[alias.asname or alias.name] = (
            (submodule, None) if _module_path(submodule).exists() else (base or "__init__", alias.name)
        )
    return aliases


class _Module:
    """One package module read statically: its top-level definitions and what each refers to."""

    def __init__(self, name):
        self.name = name
        self.source = _module_path(name).read_text()
        tree = ast.parse(self.source)
        self.aliases = {}  # module-level imports
        self.definitions = {}  # symbol -> AST node
        for node in tree.body:
            self.aliases.update(_import_aliases(node))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.definitions[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    self.definitions.update({n.id: node for n in ast.walk(target) if isinstance(n, ast.Name)})

    def segment(self, symbol):
        return ast.get_source_segment(self.source, self.definitions[symbol]) or ""

    def references(self, symbol):
        """(module, symbol) pairs that the definition `symbol` refers to; symbol None: a whole module."""
        node = self.definitions[symbol]
        aliases = dict(self.aliases)
        for inner in ast.walk(node):  # imports inside the definition (the steps import lazily)
            aliases.update(_import_aliases(inner))
        found = set()
        for inner in ast.walk(node):
            if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
                target = aliases.get(inner.value.id)
                if target and target[1] is None:  # module.attribute
                    found.add((target[0], inner.attr))
            elif isinstance(inner, ast.Name):
                if inner.id in aliases and aliases[inner.id][1] is not None:
                    found.add(aliases[inner.id])
                elif inner.id in self.definitions and inner.id != symbol:
                    found.add((self.name, inner.id))
        return found


@lru_cache(maxsize=None)
def _read_module(name):
    return _Module(name)


def code_digest(module, symbol):
    """sha256 (16 hex characters) of the definition `symbol` of package module `module` and of every
    package definition it refers to, transitively. A `symbol` that is no definition of `module` is an
    error (a renamed step would otherwise digest to a constant); references that resolve to nothing
    of the package (builtins, star imports) are skipped."""
    if not _module_path(module).exists() or symbol not in _read_module(module).definitions:
        raise LookupError(
            f"code_digest: {module}.{symbol} is not a definition of the package (renamed or moved?)"
        )
    seen, todo = set(), [(module, symbol)]
    parts = []
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        name, sym = key
        if not _module_path(name).exists():
            continue
        mod = _read_module(name)
        if sym is None:  # a whole module used as a namespace: all its definitions
            todo.extend((name, s) for s in mod.definitions)
            continue
        if sym not in mod.definitions:
            continue  # e.g. a name from a star import or a builtin shadow: nothing of ours
        parts.append(f"{name}:{sym}\0{mod.segment(sym)}")
        todo.extend(mod.references(sym) - seen)
    return hashlib.sha256("\0".join(sorted(parts)).encode()).hexdigest()[:16]


def workflow_step_code(script, runner):
    """A rule's `code` param: the digest of the package code that the workflow script `script` runs
    (its step and every package definition the step uses) and of the job runner `runner` with the
    CPU pinning it applies to every job (which changes MindSpore's arithmetic). Snakemake tracks a
    rule's script but not the modules it imports; with this param an edit to the package reruns
    exactly the jobs whose code changed, and contents that did not change (a branch switch and
    back) rerun nothing."""
    pinning = code_digest_of(pin_to_free_cores)
    runner_code = hashlib.sha256(Path(runner).read_bytes() + pinning.encode()).hexdigest()[:16]
    return f"{code_digest(*script_step(script))}-{runner_code}"


def code_digest_of(function):
    """code_digest of a function of the package, given as the function (a rename cannot leave a
    stale name behind)."""
    return code_digest(function.__module__.split(".", 1)[1], function.__name__)


def script_step(script):
    """(module, function) of the step a workflow script runs: the second argument of its
    `run(snakemake, <step>, ...)` call, resolved through the script's imports."""
    tree = ast.parse(Path(script).read_text())
    imports = {}
    for node in ast.walk(tree):
        imports.update(_import_aliases(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run" and len(node.args) >= 2:
            step = node.args[1]
            if isinstance(step, ast.Attribute) and isinstance(step.value, ast.Name):
                module, _ = imports[step.value.id]
                return module, step.attr
            if isinstance(step, ast.Name):
                return imports[step.id]
    raise ValueError(f"{script}: no run(snakemake, <step>, ...) call")


def main(argv=None):
    """`python -m attention_clusters.provenance workflow/scripts/<step>.py ...`: each script's `code`
    param (workflow_step_code, with workflow/scripts/runner.py beside the scripts). Two checkouts
    that print the same line for a step give that step's finished jobs the same code: a run made
    in one is not rerun for code by the other."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("scripts", nargs="+")
    for script in parser.parse_args(argv).scripts:
        if Path(script).name != "runner.py":
            print(Path(script).stem, workflow_step_code(script, Path(script).with_name("runner.py")))


if __name__ == "__main__":
    main()

"""Digests of what a result depends on: the package's own source code and input files.

`source_digest("train")` hashes the source of attention_clusters.train and of every package
module it imports, directly or not (found by reading the import statements, including those
inside functions), so a resumable state or a rule's parameters change exactly when code
that can change the result does.
"""

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name


def _module_path(name):
    path = PACKAGE_DIR / (name.replace(".", "/") + ".py")
    return path if path.exists() else PACKAGE_DIR / name.replace(".", "/") / "__init__.py"


def _imported_modules(name):
    """Package modules (names relative to the package) that module `name` imports anywhere."""
    tree = ast.parse(_module_path(name).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from .x import y
                base = node.module or ""
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                base = node.module[len(PACKAGE) + 1:]
            else:
                continue
            if base:
                found.add(base)
            for alias in node.names:  # from . import train: a submodule, when such a file exists
                candidate = f"{base}.{alias.name}" if base else alias.name
                if _module_path(candidate).exists():
                    found.add(candidate)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name[len(PACKAGE) + 1:])
    return {module for module in found if _module_path(module).exists()}


@lru_cache(maxsize=None)
def import_closure(name):
    """Sorted names of `name` and every package module it imports, transitively."""
    seen, todo = set(), [name]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(_imported_modules(module) - seen)
    return tuple(sorted(seen | {"__init__"}))


def source_digest(name):
    """sha256 (hex, 16 characters) of the source of `name`'s import closure in the package."""
    digest = hashlib.sha256()
    for module in import_closure(name):
        digest.update(module.encode() + b"\0" + _module_path(module).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def file_digest(path, block=1 << 22):
    """sha256 (hex) of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()

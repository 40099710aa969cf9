"""The layers of lmtools, checked on every module's imports (read with ast, so that imports inside
functions count too): cli -> ngram, nn, io -> kernels; messages, errors and constants are leaves.

- nothing outside lmtools/cli imports lmtools.cli (library code warns through lmtools.messages);
- lmtools/kernels imports nothing of lmtools outside kernels/, except the leaf modules;
- a leaf module imports nothing of lmtools;
- no module imports a private name (``_x``) of another lmtools module, nor reads one through an
  imported module (``module._x``): a name used across modules is a public name of its owner;
- no two modules import each other, directly or through others (lazy imports count);
- io imports of ngram and nn only the model data types (MODEL_TYPES), and these import nothing of
  lmtools but leaves and kernels: reading a model file needs no scorer, smoother or trainer;
- ngram and nn read no file themselves: no model-file reader (io.models, io.modelfile, io.arpa), no
  io.text.open_binary, no builtin open() (text comes through io.text's readers, models through
  io.models.load_model);
- every model kind has its scorer and sampler beside its model (lmtools.kinds.implementations, the
  one dispatch), and they keep the Scorer and Sampler interfaces;
- every module imports cleanly.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import lmtools

# Modules with no lmtools import of their own: any layer may use them.
LEAVES = {"lmtools.constants", "lmtools.errors", "lmtools.messages", "lmtools.vocab"}
# The model data types: what lmtools.io builds when it reads a model file.
MODEL_TYPES = {"lmtools.ngram.counts", "lmtools.ngram.model", "lmtools.nn.model", "lmtools.ngram.trie"}
# The readers (and writers) of model files, which only lmtools.io (and above it kinds, api, cli) may call.
MODEL_READERS = {"lmtools.io.models", "lmtools.io.modelfile", "lmtools.io.modelwrite", "lmtools.io.arpa"}
# Known exceptions to "nothing below cli imports cli", each with its reason; an entry whose module is
# gone must be removed from here.
CLI_IMPORT_EXCEPTIONS: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    mods = {"lmtools": Path(lmtools.__file__)}
    for info in pkgutil.walk_packages(lmtools.__path__, "lmtools."):
        spec = importlib.util.find_spec(info.name)
        if spec.origin.endswith(".py"):  # not a compiled module (kernels/aot.py's build)
            mods[info.name] = Path(spec.origin)
    return mods


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported module, imported name or None, line) for every import of ``name``, and the
    (module, attribute, line) of every ``alias._x`` read through an imported lmtools module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found, attrs, aliases = [], [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                found.append((a.name, None, node.lineno))
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:  # `from lmtools.cli import common`: the module itself
                    found.append((sub, None, node.lineno))
                    aliases[a.asname or a.name] = sub
                else:
                    found.append((base, a.name, node.lineno))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            v, chain = node.value, []
            while isinstance(v, ast.Attribute):
                chain.append(v.attr)
                v = v.value
            if isinstance(v, ast.Name) and v.id in aliases:
                target = ".".join([aliases[v.id]] + chain[::-1])
                if target in MODULES:
                    attrs.append((target, node.attr, node.lineno))
    return found, attrs


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _lmtools_imports(name: str):
    return [(m, n, line) for m, n, line in IMPORTS[name][0] if _within(m, "lmtools")]


def test_the_walk_finds_every_layer():
    for package in ("lmtools.cli", "lmtools.io", "lmtools.kernels", "lmtools.ngram", "lmtools.nn"):
        assert sum(_within(m, package) for m in MODULES) > 2, package
    assert LEAVES <= set(MODULES)
    # imports inside functions are seen (lm-train loads the warm-up code lazily)
    assert any(m == "lmtools.cli.warmup" for m, _, _ in IMPORTS["lmtools.cli.train"][0])


def test_nothing_below_cli_imports_cli():
    bad = [f"{name}:{line} imports {m}" for name in MODULES if not _within(name, "lmtools.cli")
           and name not in CLI_IMPORT_EXCEPTIONS for m, _, line in _lmtools_imports(name) if _within(m, "lmtools.cli")]
    assert not bad, "library code must not import the CLI (warnings: lmtools.messages):\n" + "\n".join(bad)
    gone = set(CLI_IMPORT_EXCEPTIONS) - set(MODULES)
    assert not gone, f"remove {sorted(gone)} from CLI_IMPORT_EXCEPTIONS"


def test_kernels_import_only_kernels_and_leaves():
    bad = [f"{name}:{line} imports {m}" for name in MODULES if _within(name, "lmtools.kernels")
           for m, _, line in _lmtools_imports(name)
           if not _within(m, "lmtools.kernels") and m not in LEAVES and m != "lmtools"]
    # `import lmtools` alone would be harmless, but `from lmtools import x` names a module: check it
    bad += [f"{name}:{line} imports lmtools.{n}" for name in MODULES if _within(name, "lmtools.kernels")
            for m, n, line in _lmtools_imports(name) if m == "lmtools" and n is not None]
    assert not bad, "kernels are pure computation (no io, ngram, nn or cli):\n" + "\n".join(bad)


def test_leaves_import_nothing_of_lmtools():
    for leaf in LEAVES:
        assert not _lmtools_imports(leaf), leaf


def test_no_private_names_across_modules():
    bad = []
    for name in MODULES:
        found, attrs = IMPORTS[name]
        for m, n, line in found:
            if _within(m, "lmtools") and n is not None and n.startswith("_") and not n.startswith("__") and m != name:
                bad.append(f"{name}:{line} imports {m}.{n}")
        for m, n, line in attrs:
            if m != name:
                bad.append(f"{name}:{line} reads {m}.{n}")
    assert not bad, "make these public names of the module that owns them:\n" + "\n".join(bad)


def test_io_imports_only_the_model_types_of_ngram_and_nn():
    bad = [f"{name}:{line} imports {m}" for name in MODULES if _within(name, "lmtools.io")
           for m, _, line in _lmtools_imports(name)
           if (_within(m, "lmtools.ngram") or _within(m, "lmtools.nn")) and m not in MODEL_TYPES
           and m not in ("lmtools.ngram", "lmtools.nn")]
    assert not bad, "io reads and writes files; scoring, smoothing and training live above it:\n" + "\n".join(bad)


def test_model_types_import_only_leaves_and_kernels():
    assert MODEL_TYPES <= set(MODULES)
    bad = [f"{name}:{line} imports {m}" for name in MODEL_TYPES for m, n, line in _lmtools_imports(name)
           if m not in LEAVES and not _within(m, "lmtools.kernels") and (m, n) != ("lmtools", "__version__")]
    assert not bad, "the model data types are leaves (plus kernels):\n" + "\n".join(bad)


def _calls_open(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and ((isinstance(node.func, ast.Name) and node.func.id == "open")
                 or (isinstance(node.func, ast.Attribute) and node.func.attr == "open"
                     and isinstance(node.func.value, ast.Name) and node.func.value.id in ("os", "io")))]


def test_ngram_and_nn_read_no_files():
    mods = [n for n in MODULES if _within(n, "lmtools.ngram") or _within(n, "lmtools.nn")]
    bad = [f"{name}:{line} imports {m}" for name in mods for m, _, line in _lmtools_imports(name)
           if m in MODEL_READERS]
    bad += [f"{name}:{line} imports {m}.{n}" for name in mods for m, n, line in _lmtools_imports(name)
            if m == "lmtools.io.text" and n == "open_binary"]
    bad += [f"{name}:{line} calls open()" for name in mods for line in _calls_open(MODULES[name])]
    assert not bad, "files are opened in lmtools.io (models: io.models.load_model):\n" + "\n".join(bad)


def test_the_open_check_sees_calls(tmp_path):
    src = tmp_path / "fake.py"
    src.write_text("import os\nf = open('x')\ng = os.open('y', 0)\nh = opener('z')\n")
    assert _calls_open(src) == [2, 3]


def test_every_model_kind_scores_and_samples_beside_its_model():
    from lmtools.kinds import Sampler, Scorer, implementations

    kinds = implementations()
    assert {t.__module__ for t in kinds} | {"lmtools.ngram.counts"} == MODEL_TYPES
    for model_type, classes in kinds.items():
        package = model_type.__module__.rpartition(".")[0]
        for cls, protocol in zip(classes, (Scorer, Sampler)):
            assert cls.__module__.rpartition(".")[0] == package, (cls, model_type)
            missing = [a for a in protocol.__annotations__ if a != "text" and not hasattr(cls, a)
                       and a not in cls.__init__.__code__.co_names]
            missing += [f for f in dir(protocol) if not f.startswith("_") and callable(getattr(protocol, f))
                        and not callable(getattr(cls, f, None))]
            assert not missing, (cls, missing)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # a module's own packages (lmtools.nn for lmtools.nn.train) are not counted: importing a module
    # runs its package's __init__ first in any case
    graph = {name: {m for m, _, _ in _lmtools_imports(name) if m in MODULES and m != name
                    and not name.startswith(m + ".")} for name in MODULES}
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _cycles(graph), "modules that import each other (break the cycle):\n" + "\n".join(
        " <-> ".join(c) for c in _cycles(graph))


def test_the_checks_see_lazy_relative_and_private_imports(tmp_path, monkeypatch):
    src = tmp_path / "fake.py"
    src.write_text("import lmtools.kernels.query as kq\n"
                   "def f():\n    from ..cli.common import warn\n    from .text import _hidden\n"
                   "    return kq._secret\n")
    monkeypatch.setitem(MODULES, "lmtools.io.fake", src)
    found, attrs = _imports("lmtools.io.fake", src)
    assert ("lmtools.cli.common", "warn", 3) in found and ("lmtools.io.text", "_hidden", 4) in found
    assert attrs == [("lmtools.kernels.query", "_secret", 5)]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_cleanly(name):
    importlib.import_module(name)

"""The import rules of DESIGN.md, read from the source (AST), including imports inside functions.

* running never imports training code or the CLI: engine/{runtime,models,analysis,audio,skeleton}, streams/
  and export/ import neither ``engine.train`` nor ``engine.cli``; nothing but the CLI imports the CLI;
* models know no runtime, stream or backend at run time (type-only imports are allowed);
* the runtime knows no model kind: its modules use the motion-model protocol; only ``assemble.py``
  (the one place an engine is built) names kinds;
* no import cycles between our modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "streams", "export", "bench", "clients")
RUNNING = ("engine/runtime", "engine/models", "engine/analysis", "engine/audio", "engine/skeleton", "streams",
           "export")
#: Model-kind modules: the runtime reaches them only through the protocol (and assemble.py builds them).
#: Known exceptions, each with its reason; a new violation anywhere else fails.
#: engine/train/ship.py (the model-shipping script) reuses the train CLI's data loaders; moving them is left to
#: the data-loading rework of engine/train (issue 10), which changes those loaders.
CLI_IMPORT_EXCEPTIONS = ("engine/train/ship.py",)
KIND_MODULES = ("engine.models.gpt", "engine.models.gpt_dancer", "engine.models.vqvae", "engine.models.vqvae_stream",
                "engine.models.beat_guidance", "engine.models.retrieval", "engine.models.dance_model",
                "engine.models.couple", "engine.models.follower", "export")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            if "node_modules" not in p.parts:
                out[_module_name(p)] = p
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str) -> set[str]:
    """Modules imported anywhere in the file (functions included), except under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.rsplit(".", node.level - (1 if path.name == "__init__.py" else 0))[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


def _ours(imported: set[str], known: dict[str, Path]) -> set[str]:
    return {m for m in imported if m in known}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_running_code_imports_no_training_code_and_no_cli() -> None:
    known = _sources()
    bad = []
    for mod, path in known.items():
        imports = _imports(path, mod)
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(RUNNING):
            bad += [f"{rel}: {m}" for m in imports if _under(m, "engine.train") or _under(m, "engine.cli")]
        elif not rel.startswith("engine/cli") and not _under(mod, "engine.__main__") \
                and rel not in CLI_IMPORT_EXCEPTIONS:
            bad += [f"{rel}: {m}" for m in imports if _under(m, "engine.cli")]
    assert not bad, "forbidden imports:\n" + "\n".join(sorted(bad))


def test_models_know_no_runtime_stream_or_backend() -> None:
    known = _sources()
    bad = []
    for mod, path in known.items():
        if _under(mod, "engine.models"):
            bad += [f"{mod}: {m}" for m in _imports(path, mod)
                    if any(_under(m, p) for p in ("engine.runtime", "streams", "export"))]
    assert not bad, "\n".join(sorted(bad))


def test_runtime_knows_no_model_kind() -> None:
    known = _sources()
    bad = []
    for mod, path in known.items():
        if _under(mod, "engine.runtime") and mod != "engine.runtime.assemble":
            bad += [f"{mod}: {m}" for m in _imports(path, mod) if any(_under(m, k) for k in KIND_MODULES)]
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    known = _sources()
    graph = {mod: sorted(_ours(_imports(path, mod), known) - {mod}) for mod, path in known.items()}
    # A package's __init__ is imported on the way to any of its modules; count only explicit edges.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_rules_see_imports_inside_functions(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function counts; a type-only import does not."""
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import engine.train.x\n"
                   "def f():\n    from engine.cli import run_cmds\n")
    got = _imports(src, "m")
    assert "engine.cli.run_cmds" in got and "engine.train.x" not in got

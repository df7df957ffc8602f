"""The shape of the house (shared/DESIGN.md, docs/design.md): no module of `plume` is in an import cycle, the core
imports no data-type package, and a data type registered in a few lines trains, samples and evaluates through the
command line without any change to it.

The import graph is read from the source with `ast`: every import, at module level or inside a function (a deferred
import hides a cycle, it does not remove it), except those under `if TYPE_CHECKING:`, which never run. Importing
`a.b.c` also imports the packages `a` and `a.b`, so those are edges too (but a module's own parent packages are
already being imported when it runs, and are not)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import plume
from plume.cli import main
from plume.modality import MODALITIES, DataRequest, Modality, register_modality
from plume.train.data import TensorData

PACKAGE = Path(plume.__file__).parent
NOT_CORE = ("plume", "plume.__main__", "plume.cli")  # the package's face and the command line may import anything


def modules_of(root: Path, name: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package directory `root` named `name`."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = [name, *path.relative_to(root).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that `module` imports (resolved to modules of `modules`), with their parent packages."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If) and "TYPE_CHECKING" in
              ast.unparse(guard.test) for node in ast.walk(guard)}
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    named = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            named += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            prefix = ".".join(base[:len(base) - node.level + 1] if node.level else [])
            source = ".".join(p for p in (prefix, node.module or "") if p)
            named += [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                      for alias in node.names]
    found = set()
    for name in named:
        while name and name not in modules:  # an attribute of a module: the module
            name = name.rpartition(".")[0]
        parts = name.split(".")
        found |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)} & set(modules)
    own_parents = {".".join(module.split(".")[:k]) for k in range(1, len(module.split(".")) + 1)}
    return found - own_parents


def import_graph(root: Path, name: str) -> dict[str, set[str]]:
    modules = modules_of(root, name)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_the_cycle_finder_finds_cycles_through_deferred_imports_and_packages(tmp_path):
    """The checks below can fail: a cycle hidden in a function, and one through a package's __init__, are found;
    a TYPE_CHECKING import and a module's own parent package are not cycles."""
    root = write_package(tmp_path / "pkg", {
        "__init__.py": "from .a import f\n",
        "a.py": "def f():\n    from .b import g\n    return g\n",
        "b.py": "from . import a\n",
        "sub/__init__.py": "from .x import X\n",
        "sub/x.py": "from . import y\nX = 1\n",  # its own package: no cycle
        "sub/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n",
        "c.py": "from .sub.x import X\n",
        "d.py": "from .sub import y\n",
        "sub/z.py": "from ..d import *\n",  # d imports sub (its __init__), which imports x, not z: no cycle
    })
    found = cycles(import_graph(root, "pkg"))
    assert found == [["pkg.a", "pkg.b"]]


def test_no_module_of_plume_is_in_an_import_cycle():
    found = cycles(import_graph(PACKAGE, "plume"))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def core_modules(graph: dict[str, set[str]]) -> list[str]:
    """Every module outside the data-type packages, the command line and the package's face."""
    data_types = tuple(f"plume.{name}" for name in MODALITIES)
    return [m for m in graph if m not in NOT_CORE and not m.startswith(("plume.cli.", *(f"{d}." for d in data_types)))
            and m not in data_types]


def test_the_core_imports_no_data_type_package():
    graph = import_graph(PACKAGE, "plume")
    data_types = {f"plume.{name}" for name in MODALITIES}
    assert {"plume.images", "plume.points"} <= data_types and "plume.images" in graph
    core = core_modules(graph)
    assert {"plume.denoiser", "plume.train.trainer", "plume.modality", "plume.run"} <= set(core)
    wrong = {m: sorted(d for d in graph[m] if d in data_types or d.startswith(tuple(f"{t}." for t in data_types)))
             for m in core}
    wrong = {m: d for m, d in wrong.items() if d}
    assert not wrong, f"core modules import data types: {wrong}"
    # the check itself can fail: a core module that imported plume.images would be caught
    graph["plume.denoiser"] = graph["plume.denoiser"] | {"plume.images.sets"}
    assert any("plume.images.sets" in graph[m] for m in core_modules(graph))


class Cubes(Modality):
    """A throwaway data type: points near the corners of the unit cube, measured by their distance to the nearest
    corner."""

    name = "cubes"
    summary = "points near the corners of a cube"
    embedded = ("cubes",)
    data_options = ("limit",)

    def recognizes(self, source: str) -> bool:
        return source == "cubes"

    def training_data(self, source, request: DataRequest) -> TensorData:
        n = request.options.get("limit") or 512
        g = torch.Generator().manual_seed(request.seed)
        corners = torch.randint(0, 2, (n, 3), generator=g).float() * 2 - 1  # (n, 3)
        return TensorData(corners + 0.05 * torch.randn(n, 3, generator=g),
                          info={"modality": self.name, "name": "cubes", "n": n, "seed": request.seed})

    def data_from_info(self, info, source="config.json"):
        return self.training_data("cubes", DataRequest(seed=info["seed"], options={"limit": info["n"]}))

    def default_recipe(self, shape):
        return {"backbone": {"name": "mlp", "preset": None, "options": {"width": 32, "depth": 2}},
                "denoiser": {"process": "edm", "prediction": "edm", "weighting": "edm", "time_sampling": "lognormal"},
                "training": {"steps": 30, "batch_size": 64, "lr": 5e-3, "warmup_steps": 5, "sample_count": 16}}

    def write_samples(self, samples, out, info, title):
        path = out.with_suffix(".cubes.npz")
        np.savez(path, corners=samples.numpy())
        return [path, path]

    def evaluate(self, samples, run, options, out):
        samples = samples if samples is not None else run.sample(n=options.get("n") or 64, progress=False)
        distance = (samples - samples.sign()).norm(dim=1)  # (n,) to the nearest corner
        report = {"mean_corner_distance": float(distance.mean()), "n": len(samples)}
        out.write_text(json.dumps(report))
        return report

    def report_text(self, report, path):
        return f"cubes: mean distance to a corner {report['mean_corner_distance']:.3f} -> {path}"


@pytest.fixture
def cubes():
    modality = register_modality(Cubes())
    yield modality
    del MODALITIES[modality.name]


def test_a_new_data_type_trains_samples_and_evaluates_through_the_unchanged_cli(cubes, tmp_path):
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = tmp_path / "run"
    run("train", "--data", "cubes", "--out", out, "--steps", 30, "--quiet")
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["data"]["modality"] == "cubes" and config["backbone"]["name"] == "mlp"
    assert plume.load(out).modality is cubes
    said = run("sample", out, "--n", 40, "--steps", 8, "--out", tmp_path / "drawn")
    corners = np.load(tmp_path / "drawn.cubes.npz")["corners"]
    assert corners.shape == (40, 3) and "cubes: mean distance to a corner" in said
    report = json.loads((tmp_path / "drawn.json").read_text())
    assert report["n"] == 40
    said = run("eval", out, "--n", 30)
    assert "cubes: mean distance" in said and json.loads((out / "eval.json").read_text())["n"] == 30
    run("train", "--out", out, "--resume", "--steps", 40, "--quiet")  # the data rebuilt from its info
    assert json.loads((out / "checkpoint" / "config.json").read_text())["step"] == 40
    # and "cubes:" names it even where another data type would claim the string first
    run("train", "--data", "cubes:cubes", "--out", tmp_path / "again", "--steps", 5, "--quiet")


def test_a_data_type_refuses_options_it_does_not_take_by_name():
    from plume.errors import PlumeError
    from plume.modality import modality_for_source

    images, source = modality_for_source("digits")
    with pytest.raises(PlumeError, match="'digits' is images data; the option 'column_types' does not apply"):
        images.training_data(source, DataRequest(options={"column_types": "age=int"}))
    points, source = modality_for_source("points:moons")
    assert points.name == "points" and source == "moons"
    with pytest.raises(PlumeError, match="'moons' is points data; the option 'image_size' does not apply"):
        points.training_data(source, DataRequest(options={"image_size": 32}))
    with pytest.raises(PlumeError, match="no data named 'nowhere'"):
        modality_for_source("nowhere")

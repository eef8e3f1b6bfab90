"""Package boundaries, read from the source with ``ast`` (nothing is imported): no service imports another
service's package (the shapes they exchange live in ``llmops_common.contracts``), and every package declares in
its pyproject.toml the llmops packages it imports, so an image that installs only what a package declares runs."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = sorted(p.parent for p in [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")])
SERVICE_PACKAGES = {f"llmops_{p.name}" for p in PROJECTS if p.parent.name == "services"}


def _own_packages(project: Path) -> set[str]:
    return {p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file()}


def _declared(project: Path) -> set[str]:
    """The import names of the llmops distributions ``project.dependencies`` names (``llmops-common[sql]``)."""
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"].get("dependencies", [])
    names = (re.match(r"[A-Za-z0-9._-]+", d)[0].lower().replace("-", "_") for d in dependencies)
    return {name for name in names if name.startswith("llmops_")}


def _llmops_imports(project: Path) -> dict[str, set[str]]:
    """Top-level llmops packages imported anywhere in the project's source (lazy imports included) -> the files."""
    found: dict[str, set[str]] = {}
    for path in sorted((project / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top.startswith("llmops_"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_package_is_found():
    assert SERVICE_PACKAGES == {
        "llmops_gateway",
        "llmops_feedback",
        "llmops_retriever",
        "llmops_inference",
        "llmops_trainer",
    }
    assert {p.name for p in PROJECTS} >= {"common", "models", "cli", "testkit"}


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_service_imports_another_service(project):
    own = _own_packages(project)
    imports = _llmops_imports(project)
    if not own & SERVICE_PACKAGES:
        return
    foreign = {name: files for name, files in imports.items() if name in SERVICE_PACKAGES - own}
    assert not foreign, f"{project.name} imports other services' packages (use llmops_common.contracts): {foreign}"


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_imported_llmops_packages_are_declared(project):
    imports = _llmops_imports(project)
    undeclared = {
        name: files for name, files in imports.items() if name not in _own_packages(project) | _declared(project)
    }
    assert not undeclared, f"{project.relative_to(ROOT)}/pyproject.toml does not declare: {undeclared}"

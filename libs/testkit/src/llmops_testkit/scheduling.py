"""How the suite is shared between pytest-xdist workers (``make test``: ``-n 2 --dist loadscope``).

Most of a test run here is waiting: for a service to import and migrate, for a loop's next pass, for a scrape. Two
workers overlap those waits. What must not be split between them:

- a module on one SQL backend: its module-scoped services (gateways, feedback services) would start once per
  worker. The backend is part of the unit because the session's ``sql_url`` is parametrized: a worker that went
  back and forth between backends would start the session's ``gateway`` and ``feedback`` again at each switch
  (pytest runs a session fixture again when its param changes; the previous service lives until the session ends);
- the modules on the session's vLLM (``inference_service``): each worker would start its own engine, a minute of
  CPU and gigabytes of memory. Every module that names the fixture (as an argument or in
  ``request.getfixturevalue``) is one unit, ``ENGINE_UNIT``.

xdist's ``loadgroup`` cannot express this with pytest 9 (its ``xdist_group`` renames node ids through an attribute
pytest 9 no longer reads, so every test became a unit of its own), and the controller, which hands out the units,
never collects: so the unit is decided from the node id and the module's source, here, on both sides.

The engine's unit and the modules marked ``long`` (minutes on their own) are handed out first: one of them picked up
last would run alone at the end while the other worker idles. The workers put them first in the collection;
``--no-loadscope-reorder`` makes the controller keep that order.
"""

import functools
import re
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

ENGINE_UNIT = "inference_service"
ENGINE_FIXTURE = re.compile(rf"\b{ENGINE_UNIT}\b")  # the name alone, not inside another name
BACKENDS = ("postgres", "sqlite")  # the ids of the session fixture sql_url's params


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "long: a module that takes minutes; with pytest-xdist it is handed out before the others"
    )


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own, which would answer first
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getoption("dist") == "loadscope":
        return ModuleScheduling(config, log)
    return None


class ModuleScheduling(LoadScopeScheduling):
    """loadscope, with the unit of ``unit_of``."""

    def _split_scope(self, nodeid: str) -> str:  # LoadScopeScheduling's extension point (xdist's own subclasses')
        return unit_of(nodeid, self.config.rootpath)


def unit_of(nodeid: str, rootpath: Path) -> str:
    module, _, test = nodeid.partition("::")
    if uses_engine(rootpath / module):
        return ENGINE_UNIT
    params = test.rpartition("[")[2].rstrip("]").split("-") if test.endswith("]") else []
    backend = next((param for param in params if param in BACKENDS), "")
    return f"{module}[{backend}]" if backend else module


@functools.cache
def uses_engine(module: Path) -> bool:
    return module.is_file() and ENGINE_FIXTURE.search(module.read_text()) is not None


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    result = yield
    # On a worker (``workerinput``) only, and after every other implementation, pytest's own included (it orders the
    # items by their session fixtures' params): the engine's unit and the long modules first, the rest after, each
    # in that order (the sort is stable).
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not (item.get_closest_marker("long") or uses_engine(item.path)))
    return result

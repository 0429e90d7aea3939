"""The layering the folders show, kept true by reading every module's imports.

Features (`handlers/`) build on `bot.kit`, `bot.clients`, `bot.config` and the job system's
public surface; they never reach into the server, the store, the pages or the operator commands.
The lower layers never import the upper ones, and nothing the product ships imports the stand-in
or a test-only library, so the wheel holds the product and only its declared dependencies.

All SQL lives in `bot/store/`: a rule about records (what may be replayed, who may see a run,
which job is next) holds for the server, the pages and the command line alike only when one
module says it; a query written beside a page or a doctor check is a second copy that drifts.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[2]

#: Who may not import whom: a module under the key's folder never imports these.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "handlers": ("bot.server", "bot.store", "bot.web", "bot.ops"),
    # The kit is the features' view of the records and the job system: it may read below it.
    "bot/kit": ("bot.server", "bot.web", "bot.ops", "handlers"),
    "bot/clients": ("bot.server", "bot.store", "bot.web", "bot.ops", "bot.jobs", "handlers"),
    "bot/store": ("bot.server", "bot.web", "bot.ops", "bot.kit", "bot.clients", "handlers"),
    "bot/jobs": ("bot.server", "bot.web", "bot.ops", "handlers"),
    "codeowners": ("bot", "handlers"),
}

#: Libraries only the tests and the stand-in use (the `dev` extra), never the product.
DEV_ONLY = ("tests", "yaml", "jsonschema", "pytest", "hypothesis")

#: `bot run` without credentials plays the demo on the stand-in, which only a clone has; it
#: imports it lazily and says so when it is missing.
STAND_IN_USERS = {("bot/ops/cli.py", "tests.sandbox.scenario")}


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_a_layer_imports_only_what_is_below_it(folder):
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(folder)
        for name in _imports(path)
        if any(_under(name, banned) for banned in FORBIDDEN[folder])
    ]
    assert wrong == []


def test_the_product_never_imports_the_stand_in_or_a_test_library():
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in ("bot", "handlers", "codeowners")
        for path in _modules(folder)
        for name in _imports(path)
        if any(_under(name, dev) for dev in DEV_ONLY)
        and (str(path.relative_to(ROOT)), name) not in STAND_IN_USERS
    ]
    assert wrong == []


def test_the_wheel_holds_the_product_and_not_the_stand_in():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(ROOT), include=find["include"])
    assert "bot" in packages
    assert "handlers.slow_ci" in packages
    assert not [p for p in packages if _under(p, "tests")]
    runtime = " ".join(config["project"]["dependencies"]).lower()
    assert "yaml" not in runtime


# ---------------------------------------------------------------------- SQL
#: Where statements may run.
STORE = ROOT / "bot" / "store"
#: The methods of `sqlite3.Connection` and `sqlite3.Cursor` that run SQL.
SQL_CALLS = frozenset({"execute", "executemany", "executescript"})
#: Modules outside the store allowed to run SQL, and why. Keep it empty.
EXCEPTIONS: dict[str, str] = {}


def _sql_calls(source: str, filename: str) -> list[int]:
    """Lines of `source` that call `.execute(`, `.executemany(` or `.executescript(`."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source, filename))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SQL_CALLS
    ]


def _product_modules() -> list[Path]:
    return [path for folder in ("bot", "handlers") for path in _modules(folder)]


def test_no_module_outside_the_store_runs_sql():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _product_modules()
        if not path.is_relative_to(STORE) and str(path.relative_to(ROOT)) not in EXCEPTIONS
        for line in _sql_calls(path.read_text(), str(path))
    ]
    assert found == []
    assert EXCEPTIONS == {}


def test_the_check_finds_a_statement_however_the_connection_is_reached():
    source = (
        "conn.execute('SELECT 1')\n"
        "self.store._conn.executemany('INSERT INTO t VALUES (?)', rows)\n"
        "connect().executescript('VACUUM')\n"
        "loop.run_in_executor(None, work)\n"  # an executor is not SQL
    )
    assert _sql_calls(source, "example.py") == [1, 2, 3]
    assert any(path.is_relative_to(STORE) for path in _product_modules())  # the walk sees the store

"""Run the hidden checks of one blank with pytest, the student's objects supplied as a fixture.

A check module is a plain pytest module under ``autograder/checks/``, or a package of them (one submodule
per blank or per few blanks, each listing its ``BLANKS``; the package lists them all). Each test function
carries ``@blank("<name>")``, takes the fixtures ``student`` (the objects the notebook passed in, as
attributes) and ``device``, states what it verifies in its docstring's first line, and fails with an
assertion whose message names the likely mistake.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pkgutil
from importlib import import_module
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch

from autograder.checks.compare import UPDATES_PARAMETERS
from autograder.checks.data import COULD_NOT_RUN, CheckCouldNotRun
from autograder.checks.declared import CHECK_MODULES
from autograder.checks.results import BlankReport, CheckResult
from autograder.device import get_device

MESSAGE_LIMIT = 300


def blank(name: str) -> pytest.MarkDecorator:
    """Mark a check function as belonging to the blank ``name``."""
    return pytest.mark.blank(name)


gate = pytest.mark.gate
"""Mark a check as repeating what the blank's visible test asserts: if it fails, the blank scores 0."""


def _module_for(blank_name: str) -> ModuleType:
    for module_name in CHECK_MODULES:
        module = import_module(f"autograder.checks.{module_name}")
        if blank_name in getattr(module, "BLANKS", ()):
            return module
    raise KeyError(f"no checks for a blank named {blank_name!r}; known blanks: {sorted(known_blanks())}")


def check_files(module: ModuleType, blank_name: str | None = None) -> list[str]:
    """The files pytest collects for ``module``'s checks of ``blank_name`` (of every blank when None).

    A plain module is its own file; for a package, the files of its submodules whose ``BLANKS`` name the blank.
    """
    if not hasattr(module, "__path__"):
        return [module.__file__]
    files = []
    for info in pkgutil.iter_modules(module.__path__):
        submodule = import_module(f"{module.__name__}.{info.name}")
        blanks = getattr(submodule, "BLANKS", ())
        if blank_name in blanks or (blank_name is None and blanks):
            files.append(submodule.__file__)
    if not files:
        raise KeyError(f"no module of {module.__name__} has checks for a blank named {blank_name!r}")
    return files


def known_blanks() -> dict[str, str]:
    """Every blank that has checks, mapped to its check module's name."""
    return {
        blank_name: module_name
        for module_name in CHECK_MODULES
        for blank_name in import_module(f"autograder.checks.{module_name}").BLANKS
    }


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


def failure_message(error: BaseException) -> str:
    """The one-line message for a failed check: the assertion's text, or what the student's code raised."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, AssertionError):
        return _first_line(str(error)) or "the result differs from the reference"
    detail = _first_line(str(error))
    return f"your code raised {type(error).__name__}" + (f": {detail}" if detail else "")


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return reason.removeprefix("Skipped: ").strip() or "the check was skipped"


def _could_not_run(reason: str) -> str:
    """The message of a check that could not run, e.g. ``could not run: the MNIST sample is not provisioned...``."""
    return _first_line(reason if reason.startswith(COULD_NOT_RUN) else f"{COULD_NOT_RUN}: {reason}")


class _ChecksPlugin:
    """Supplies the fixtures, keeps only the requested blank's checks and records each outcome."""

    def __init__(self, blank_name: str, student: SimpleNamespace, device: torch.device) -> None:
        self.blank_name, self._student, self._device = blank_name, student, device
        self.results: list[CheckResult] = []
        self.recorded: dict = {}

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "blank(name): the blank a hidden check belongs to")
        config.addinivalue_line("markers", "gate: the check repeats the visible test; failing it scores the blank 0")

    @pytest.fixture
    def student(self) -> SimpleNamespace:
        return self._student

    @pytest.fixture
    def device(self) -> torch.device:
        return self._device

    @pytest.fixture
    def artifacts(self) -> dict:
        """A dict a check may fill with JSON-ready data for feedback (e.g. training curves)."""
        return self.recorded

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        def belongs(item: pytest.Item) -> bool:
            marker = item.get_closest_marker("blank")
            return marker is not None and marker.args[0] == self.blank_name

        deselected = [item for item in items if not belongs(item)]
        items[:] = [item for item in items if belongs(item)]
        config.hook.pytest_deselected(items=deselected)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        failed_setup = report.when == "setup" and (report.failed or report.skipped)
        if report.when == "call" or failed_setup:
            doc = getattr(item, "function", None).__doc__ or item.name
            name, is_gate = _first_line(doc), item.get_closest_marker("gate") is not None
            if report.passed:
                self.results.append(CheckResult(name, True, gate=is_gate))
            elif report.skipped:  # a check that cannot run counts against the blank, never dropped
                self.results.append(CheckResult(name, False, _could_not_run(_skip_reason(report)), gate=is_gate))
            elif report.failed:
                error = call.excinfo.value
                message = _first_line(str(error)) if isinstance(error, CheckCouldNotRun) else failure_message(error)
                self.results.append(CheckResult(name, False, message, gate=is_gate))
        return report


UNUSED_PLUGINS = (
    "cacheprovider",
    "unraisableexception",  # its teardown runs gc.collect() several times: ~0.3 s per blank
    "threadexception",
    "logging", "warnings", "faulthandler", "debugging", "doctest", "junitxml", "pastebin", "legacypath", "stepwise",
    "setuponly", "setupplan", "unittest", "tmpdir", "monkeypatch", "recwarn", "python_path",
)
"""pytest's built-in plugins that no check uses (the checks take only the plugin's own fixtures, and the
runner captures their output itself). pytest runs once per blank, so each registered plugin costs every
``check(...)`` call; leaving these out saves about a quarter of pytest's own time per blank."""


def _pytest_args(files: list[str]) -> list[str]:
    folder = os.path.commonpath([str(Path(file).parent) for file in files])
    return [
        *files,
        "-q",
        "--assert=plain",
        "--tb=no",  # a failure's message comes from its exception, never from pytest's report of its traceback
        "-c",
        os.devnull,
        "--rootdir",
        folder,
        "--confcutdir",
        folder,
        *[arg for plugin in UNUSED_PLUGINS for arg in ("-p", f"no:{plugin}")],
        "-o",
        "python_files=*.py",
        "-o",
        "python_functions=test_*",
        "-W",
        "ignore",
    ]


@functools.cache
def warm_up() -> None:
    """Pay ahead what the first run of checks in a process would: pytest's plugins and collection of every
    check module, and the imports ``torch.autograd.gradcheck`` and the first ``torch.optim`` optimizer make on
    their first call (the optimizer imports ``torch._dynamo``: about 0.5 CPU s), and hypothesis's first reading
    of the loaded modules' constants (``_read_local_constants``).

    The checker calls this while the student's kernel starts, so the first test cell does not wait for it.
    Only the first call in a process (or in the fork server a checker was forked from) does the work.
    """
    import numpy.random  # noqa: F401 - hypothesis seeds it before every check
    from hypothesis import given, settings, strategies

    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(torch.sin, (x,))
    torch.optim.SGD([x], lr=0.1)
    settings(max_examples=1, database=None)(given(strategies.integers())(lambda n: None))()
    plugin = _ChecksPlugin("", SimpleNamespace(), torch.device("cpu"))
    files = [file for name in CHECK_MODULES for file in check_files(import_module(f"autograder.checks.{name}"))]
    with _plugin_autoload_disabled(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        pytest.main([*_pytest_args(files), "--collect-only"], plugins=[plugin])
    _read_local_constants()


def _read_local_constants() -> None:
    """Have hypothesis read now the constants of the modules loaded so far, as it does on a check's first draw.

    Hypothesis sometimes draws a constant found in the source of the project's own modules; the first time, it
    looks at every module in ``sys.modules`` (about 2,300 here) and parses the project's: 0.05 to 0.2 CPU s. Done
    in the fork server's warm-up, every checker forked from it inherits the result and reads only the modules
    loaded after the fork (none, in a normal run). The draws are the same: the same modules give the same
    constants. Without the function (another hypothesis version), the first draw pays it, as before.
    """
    try:
        from hypothesis.internal.conjecture.providers import _get_local_constants
    except ImportError:
        return
    _get_local_constants()


@contextlib.contextmanager
def _plugin_autoload_disabled():
    """Only the plugins the checks name: none of those installed in the environment (xdist, hypothesis's...)."""
    previous = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = previous


def run_checks(
    blank_name: str, points: float, objects: dict[str, Any], device: str | torch.device | None = None
) -> BlankReport:
    """Run every check of ``blank_name`` against the student's ``objects``.

    Args:
        blank_name: the blank, e.g. ``"mnist_loss"``.
        points: the blank's maximum points.
        objects: the student's functions and classes by name, e.g. ``{"mnist_loss": mnist_loss}``.
        device: where the checks build their tensors; defaults to ``get_device()``.

    Returns:
        A ``BlankReport``; never raises for a problem in the student's code. Nothing is printed.
    """
    try:
        module = _module_for(blank_name)
        files = check_files(module, blank_name)
        plugin = _ChecksPlugin(blank_name, SimpleNamespace(**objects), get_device(device))
    except (KeyError, ValueError) as error:
        return BlankReport(blank_name, points, error=str(error))
    sink = io.StringIO()
    updating = UPDATES_PARAMETERS.set(blank_name in getattr(module, "UPDATES_PARAMETERS", ()))
    try:
        with _plugin_autoload_disabled(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            exit_code = pytest.main(_pytest_args(files), plugins=[plugin])
    except Exception as error:  # noqa: BLE001 - a broken run must score 0 with a reason, not crash the cell
        return BlankReport(blank_name, points, error=f"{type(error).__name__}: {error}")
    finally:
        UPDATES_PARAMETERS.reset(updating)
    if not plugin.results:
        return BlankReport(blank_name, points, error=f"no check ran (pytest exit code {int(exit_code)})")
    return BlankReport(blank_name, points, plugin.results, artifacts=plugin.recorded)

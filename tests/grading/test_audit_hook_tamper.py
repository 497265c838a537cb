"""The notebook's code cannot talk the kernel's audit hook out of a refusal.

Python code in the kernel can reach the hook's frames (a refusal's traceback, a signal handler that interrupts the
hook), rebind the hook module's globals and the builtins, and hand the hook path objects of its own. Each test runs
one such attack in a fresh interpreter with the hook installed as a kernel installs it (``kernel_boot.py`` loaded
by path, ``_install_audit_hook``), then tries what the hook must still refuse: reading a denied file, writing into
a readable folder, starting a process. Every attack here gets past the hook of a design that keeps its rules in
module globals, its caches in mutable containers reachable from its frames, or calls ``__fspath__`` itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autograder.grading.sandbox import kernel_boot

PRELUDE = """
import builtins, importlib.util, json, os, signal, sys, threading, time, types
spec = importlib.util.spec_from_file_location("autograder_sandbox_kernel_boot", {boot!r})
kernel_boot = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = kernel_boot  # as in a forked kernel: reachable from the notebook
spec.loader.exec_module(kernel_boot)
SECRET, READABLE, SCRATCH = {secret!r}, {readable!r}, {scratch!r}
log_fd = os.open({log!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
kernel_boot._install_audit_hook({config!r}, log_fd)
Refused = PermissionError
outcome = {{}}

def hook_frames(frame):
    '''The frames of the audit hook's file from ``frame`` outwards, and those of the generators they hold.'''
    found = []
    while frame is not None:
        if frame.f_code.co_filename.endswith("audit_hook.py"):
            found.append(frame)
            for value in list(frame.f_locals.values()):
                if isinstance(value, types.GeneratorType) and value.gi_frame is not None:
                    found.append(value.gi_frame)
        frame = frame.f_back
    return found

def permissive(*args, **kwargs):
    return True

def poison(frame):
    '''Change whatever the frame's variables let change, as a notebook would to get past the hook.'''
    folder = os.path.dirname(SECRET)
    for value in list(frame.f_locals.values()):
        try:
            if isinstance(value, set):
                value.add(threading.get_ident())  # "this thread's events are the hook's own"
            elif isinstance(value, dict):
                value[folder] = True  # "every file of the secret folder may be read"
            elif isinstance(value, list):
                value.clear()
            for cell in getattr(value, "__closure__", None) or ():
                if callable(cell.cell_contents) and getattr(cell.cell_contents, "__name__", "") in (
                        "refuse", "may_read", "decide", "check_path", "under"):
                    cell.cell_contents = permissive
        except Exception:
            pass

def try_all():
    '''What the hook must still refuse, each as True when refused.'''
    result = {{}}
    try:
        with open(SECRET) as handle:
            result["secret"] = handle.read()
    except Refused:
        result["secret"] = True
    planted = os.path.join(READABLE, "planted.txt")
    try:
        os.close(os.open(planted, os.O_WRONLY | os.O_CREAT, 0o600))
        result["write"] = not os.path.exists(planted)
    except Refused:
        result["write"] = True
    try:
        os.system("true")
        result["process"] = False
    except Refused:
        result["process"] = True
    return result
"""


def attack(tmp_path: Path, body: str) -> tuple[dict, str]:
    """Run ``body`` after the prelude in a fresh interpreter; its ``outcome`` with ``try_all()``'s answers, and
    the refusal log."""
    readable, secret_folder, scratch = tmp_path / "data", tmp_path / "secret", tmp_path / "scratch"
    for folder in (readable, secret_folder, scratch):
        folder.mkdir(exist_ok=True)
    (readable / "image.png").write_bytes(b"png")
    (secret_folder / "answers.txt").write_text("the answers")
    log = tmp_path / "refusals.log"
    config = {"scratch": str(scratch), "readable": [str(readable), sys.prefix, sys.base_prefix], "denied": [str(secret_folder)],
              "socket": "", "libraries": []}
    script = PRELUDE.format(boot=kernel_boot.__file__, secret=str(secret_folder / "answers.txt"), readable=str(readable),
                            scratch=str(scratch), log=str(log), config=config)
    script += textwrap.dedent(body) + "\noutcome.update(try_all())\nprint(json.dumps(outcome))\n"
    return run_script(script, scratch, log)


def run_script(script: str, scratch: Path, log: Path) -> tuple[dict, str]:
    """Run ``script`` (the prelude and an attack ending in ``print(json.dumps(outcome))``) in a fresh interpreter in
    ``scratch``; the outcome it printed, and the refusal log ``log``."""
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120, cwd=scratch)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), log.read_text() if log.exists() else ""


def assert_all_refused(outcome: dict) -> None:
    assert outcome["secret"] is True, f"the denied file was read: {outcome['secret']!r}"
    assert outcome["write"] is True, "a file was written into a readable folder"
    assert outcome["process"] is True, "a process was started"


def test_a_refusals_traceback_gives_nothing_that_changes_a_decision(tmp_path):
    outcome, log = attack(tmp_path, """
        reached = 0
        for _ in range(3):
            try:
                os.system("true")
            except PermissionError as error:
                traceback = error.__traceback__
                while traceback is not None:
                    for frame in hook_frames(traceback.tb_frame):
                        reached += 1
                        poison(frame)
                    traceback = traceback.tb_next
        outcome["reached"] = reached
    """)
    assert outcome["reached"] > 0  # the hook's frames were there to poison
    assert_all_refused(outcome)
    assert "answers.txt" in log and "starting a process" in log


def test_a_signal_handler_that_interrupts_the_hook_gives_nothing_that_changes_a_decision(tmp_path):
    outcome, log = attack(tmp_path, """
        reached = []
        deadline = time.monotonic() + 30
        def handler(signum, frame):
            if time.monotonic() > deadline:  # a slow machine's handlers could take every moment: stop them
                signal.setitimer(signal.ITIMER_REAL, 0)
            for found in hook_frames(frame):
                reached.append(found.f_code.co_name)
                poison(found)
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        while len(reached) < 50 and time.monotonic() < deadline:
            for path in (os.path.join(READABLE, "image.png"), SECRET):
                try:
                    open(path, "rb").close()
                except Exception:
                    pass
        signal.setitimer(signal.ITIMER_REAL, 0)
        outcome["reached"] = sorted(set(reached))
    """)
    assert outcome["reached"], "no signal arrived while the hook ran"
    assert_all_refused(outcome)


def test_the_hook_never_calls_a_notebooks_fspath(tmp_path):
    """A path object that names the denied folder to everyone but the hook: ``os.open`` turns it into a string
    before its event; ``sqlite3.connect`` raises its event with the object itself and turns it into a string after
    (the gradebook is an SQLite database)."""
    import sqlite3

    (tmp_path / "secret").mkdir()
    with sqlite3.connect(tmp_path / "secret" / "gradebook.db") as database:
        database.execute("create table grade (score real)")
        database.execute("insert into grade values (42)")
    outcome, log = attack(tmp_path, """
        import sqlite3
        asked_by_the_hook = []
        class Shifty:
            def __init__(self, target):
                self.target = target
            def __fspath__(self):
                frames = hook_frames(sys._getframe(1))
                if frames:
                    asked_by_the_hook.append(len(frames))
                    for frame in frames:
                        poison(frame)
                    return os.path.join(SCRATCH, "mine.db")
                return self.target
        try:
            fd = os.open(Shifty(SECRET), os.O_RDONLY)
            outcome["open"] = os.read(fd, 100).decode()
        except PermissionError:
            outcome["open"] = True
        try:
            gradebook = os.path.join(os.path.dirname(SECRET), "gradebook.db")
            outcome["sqlite"] = sqlite3.connect(Shifty(gradebook)).execute("select * from grade").fetchall()
        except PermissionError:
            outcome["sqlite"] = True
        outcome["asked_by_the_hook"] = asked_by_the_hook
    """)
    assert outcome["open"] is True, f"read through a shifting __fspath__: {outcome['open']!r}"
    assert outcome["sqlite"] is True, f"the gradebook was read through a shifting __fspath__: {outcome['sqlite']!r}"
    assert outcome["asked_by_the_hook"] == []
    assert_all_refused(outcome)
    assert "opening a database (a path the sandbox cannot read)" in log


def test_rebinding_the_hook_modules_globals_and_the_builtins_changes_nothing(tmp_path):
    outcome, log = attack(tmp_path, """
        hook_module = sys.modules["autograder_sandbox_kernel_boot"].AUDIT_HOOK
        for name in list(vars(hook_module)):
            value = getattr(hook_module, name)
            if isinstance(value, (frozenset, set, dict, tuple)):
                setattr(hook_module, name, type(value)())
            elif isinstance(value, int):
                setattr(hook_module, name, 0)
        for name in ("any", "isinstance", "issubclass", "bool", "len"):
            setattr(builtins, name, lambda *args: False)
        setattr(builtins, "OSError", Exception)
    """)
    assert_all_refused(outcome)


def test_the_hooks_own_functions_cannot_be_changed(tmp_path):
    outcome, log = attack(tmp_path, """
        hook_module = sys.modules["autograder_sandbox_kernel_boot"].AUDIT_HOOK
        changed = []
        for function, attribute, value in ((hook_module._walk, "__code__", permissive.__code__),
                                           (hook_module._decide, "__code__", permissive.__code__),
                                           (kernel_boot._log_refusal, "__defaults__", (None,) * 5)):
            try:
                setattr(function, attribute, value)
                changed.append(function.__name__)
            except PermissionError:
                pass
        outcome["changed"] = changed
    """)
    assert outcome["changed"] == []
    assert log.count("of a function of the sandbox") == 3
    assert_all_refused(outcome)


def test_stopping_the_hooks_decisions_refuses_everything_after(tmp_path):
    outcome, log = attack(tmp_path, """
        try:
            os.system("true")
        except PermissionError as error:
            traceback = error.__traceback__
            while traceback is not None:
                for value in list(traceback.tb_frame.f_locals.values()):
                    if isinstance(value, types.GeneratorType):
                        value.close()
                traceback = traceback.tb_next
        try:
            open(os.path.join(READABLE, "image.png")).close()
            outcome["readable"] = True
        except PermissionError:
            outcome["readable"] = False
    """)
    assert outcome["readable"] is False
    assert_all_refused(outcome)
    assert "after the sandbox's decisions were stopped" in log


def test_pathlib_paths_and_directory_entries_are_read_as_the_system_call_reads_them(tmp_path):
    outcome, log = attack(tmp_path, """
        import pathlib
        outcome["listed"] = sorted(os.listdir(pathlib.Path(READABLE)))
        outcome["image"] = pathlib.Path(READABLE, "image.png").read_bytes().decode()
        outcome["entries"] = [open(entry, "rb").read().decode() for entry in os.scandir(READABLE)]
        try:
            pathlib.Path(SECRET).read_text()
            outcome["secret_path"] = False
        except PermissionError:
            outcome["secret_path"] = True
    """)
    assert outcome["listed"] == ["image.png"] and outcome["image"] == "png" and outcome["entries"] == ["png"]
    assert outcome["secret_path"] is True
    assert_all_refused(outcome)


def test_an_interrupt_while_the_hook_decides_reaches_the_notebook_and_the_hook_goes_on(tmp_path):
    """A cell interrupted (SIGINT: ``KeyboardInterrupt``) while the hook decides gets its interrupt, as from any
    other line; the hook keeps deciding, with no refusal logged for it."""
    outcome, log = attack(tmp_path, """
        interrupted_in = []
        def interrupt(signum, frame):
            names = [found.f_code.co_name for found in hook_frames(frame)]
            if "_decisions" in names:
                interrupted_in.append(names)
                raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        deadline, interrupts = time.monotonic() + 30, 0
        while not interrupted_in and time.monotonic() < deadline:
            try:
                open(os.path.join(READABLE, "image.png"), "rb").close()
            except KeyboardInterrupt:
                interrupts += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        outcome["interrupted"] = bool(interrupted_in) and interrupts >= 1
        with open(os.path.join(READABLE, "image.png"), "rb") as handle:
            outcome["readable"] = handle.read().decode()
    """)
    assert outcome["interrupted"], "no interrupt arrived while the hook decided"
    assert outcome["readable"] == "png"
    assert_all_refused(outcome)
    assert "stopped" not in log and "while the sandbox decides" not in log


def _globals_read(code, after_first_yield: bool = False) -> list[str]:
    """The global (or builtin) names ``code`` reads, and those of the code nested in it; with ``after_first_yield``,
    only those read after its first ``yield``."""
    import dis

    names, yielded = [], not after_first_yield
    for instruction in dis.get_instructions(code):
        yielded = yielded or instruction.opname == "YIELD_VALUE"
        if yielded and instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            names.append(instruction.argval)
    for constant in code.co_consts:
        if hasattr(constant, "co_code") and yielded:
            names += _globals_read(constant)
    return names


def test_the_hook_reads_no_global_or_builtin_once_installed():
    """What Python calls (``install``'s ``hook``), the decisions after their start, and the functions they call
    find every name in their own variables: rebinding a module global or a builtin reaches none of them."""
    hook_module = kernel_boot.AUDIT_HOOK
    (hook,) = [constant for constant in hook_module.install.__code__.co_consts if getattr(constant, "co_name", "") == "hook"]
    assert _globals_read(hook) == []
    assert _globals_read(hook_module._decisions.__code__, after_first_yield=True) == []
    assert _globals_read(hook_module._walk.__code__) == [] and _globals_read(hook_module._decide.__code__) == []
    assert _globals_read(hook_module._decisions.__code__)  # before its first yield, it reads what it needs

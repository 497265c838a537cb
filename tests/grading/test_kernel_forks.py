"""Kernels forked from the batch's fork server: sandboxed like any kernel, tied to the process Jupyter started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from autograder.grading import outcome
from autograder.grading.sandbox import layout
from autograder.grading.servers import ForkServer

pytestmark = pytest.mark.slow

DRIVER = textwrap.dedent('''
    import json, sys, time
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(extra_arguments=["--HistoryManager.hist_file=:memory:"])
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=180)

    def run(code, interrupt_after=None):
        msg_id = kc.execute(code)
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            km.interrupt_kernel()
        shown = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                shown.append(content["text"])
            elif kind == "error":
                shown.append(content["ename"])
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(shown).strip()

    result = {"stand_in": km.provisioner.process.pid}
    for name, code in json.loads(sys.argv[1]).items():
        result[name] = run(code, interrupt_after=3 if name == "interrupted" else None)
    if sys.argv[2] == "shutdown":
        km.shutdown_kernel(now=True)
    else:
        kc.execute(sys.argv[2])
        deadline = time.time() + 30
        while km.is_alive() and time.time() < deadline:
            time.sleep(0.1)
        result["stand_in_alive_after_kernel_exit"] = km.is_alive()
    print("RESULT " + json.dumps(result))
''')

PROBES = {
    "tracebacks": "import sys; lexers = sys.modules.get('pygments.lexers.python');"
                  " print('stack_data' in sys.modules, lexers is not None and '_tokens' in vars(lexers.PythonLexer))",
    "probe": "import os, sys; print(os.getpid(), os.getppid(), 'pandas' in sys.modules, os.getcwd() == os.environ['HOME'])",
    "refused": "open({course!r}).read()",
    "interrupted": "import time; time.sleep(60)",
    "after_interrupt": "print(6 * 7)",
    "debugger": "import sys; print(sys.modules.get('debugpy', 'absent'), 'pydevd' in sys.modules)",
    "frozen": "import gc; print(gc.get_freeze_count() > 100_000)",
}


@pytest.fixture
def forks(tmp_path: Path):
    server = ForkServer.start(tmp_path / "batch", threads=1)
    yield server
    server.close()
    assert not server.socket.parent.exists()


def _sandbox(tmp_path: Path, fork_server: Path | None) -> layout.Sandbox:
    course = tmp_path / "course"
    (course / "secret").mkdir(parents=True, exist_ok=True)
    (course / "secret" / "answers.txt").write_text("42")
    work = tmp_path / "batch" / "00001"
    work.mkdir(parents=True)
    return layout.build_sandbox(work, course, {}, threads=1, fork_server=fork_server)


def _drive(sandbox: layout.Sandbox, course: Path, ending: str, probes: dict[str, str] | None = None) -> dict:
    """Run the probes (``PROBES`` by default) in a kernel of ``sandbox``, then end it with ``ending``."""
    probes = {name: code.format(course=str(course / "secret" / "answers.txt")) for name, code in (probes or PROBES).items()}
    shown = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(probes), ending], env=sandbox.env, cwd=sandbox.work,
        capture_output=True, text=True, timeout=600,
    )
    line = next((line for line in shown.stdout.splitlines() if line.startswith("RESULT ")), None)
    assert line is not None, shown.stdout[-3000:] + shown.stderr[-3000:]
    return json.loads(line[len("RESULT "):])


def test_a_forked_kernel_is_sandboxed_interruptible_and_ends_with_its_stand_in(tmp_path, forks):
    sandbox = _sandbox(tmp_path, forks.socket)
    result = _drive(sandbox, tmp_path / "course", "shutdown")
    pid, parent, preloaded, in_scratch = result["probe"].split()
    assert int(sandbox.kernel_pid.read_text()) == int(pid) != result["stand_in"]
    assert int(parent) == forks.process.pid
    assert preloaded == "True" and in_scratch == "True"
    assert result["refused"] == "PermissionError"
    assert "reading" in sandbox.violations.read_text()
    assert result["interrupted"] == "KeyboardInterrupt" and result["after_interrupt"] == "42"
    assert result["debugger"] == "None False"  # started without ipykernel's debugger: no debugpy, no pydevd
    assert result["frozen"] == "True"  # the preloaded libraries' objects are out of the collector's reach
    assert result["tracebacks"] == "True True"  # before its first traceback: the server formatted one already
    psutil.wait_procs([psutil.Process(int(pid))] if psutil.pid_exists(int(pid)) else [], timeout=30)
    assert not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
    assert forks.process.poll() is None  # the server outlives its kernels


SWAP_PROBES = {
    "remembered": "import os; os.makedirs('d/link'); open('d/link/answers.txt', 'w').write('mine'); print(open('d/link/answers.txt').read())",
    "swapped": "os.rename('d', 'old'); os.rename('p', 'd'); print(open('d/link/answers.txt').read())",
}


def test_a_folder_swapped_for_one_with_a_link_is_resolved_anew(tmp_path, forks):
    """The sandbox remembers folders' real paths; a folder replaced since must be resolved again, or the link's
    target leaks."""
    sandbox = _sandbox(tmp_path, forks.socket)
    holder = sandbox.kernel / "p"
    holder.mkdir()
    (holder / "link").symlink_to(tmp_path / "course" / "secret")  # a notebook cannot make links; the test can
    if sandbox.uid is not None:
        os.chown(holder, sandbox.uid, -1)
    result = _drive(sandbox, tmp_path / "course", "shutdown", SWAP_PROBES)
    assert result["remembered"] == "mine"  # d/link: a folder of the kernel's own, whose real path is remembered
    assert result["swapped"] == "PermissionError"
    assert "answers.txt" in sandbox.violations.read_text()


ENDINGS = {
    "exit": ("import os; os._exit(3)", {"exit_code": 3}),
    "kill": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", {"signal": 9}),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_the_stand_in_ends_when_its_forked_kernel_ends_and_the_server_records_how(tmp_path, forks, ending):
    code, recorded = ENDINGS[ending]
    sandbox = _sandbox(tmp_path, forks.socket)
    assert layout.kernel_ending(sandbox) is None
    result = _drive(sandbox, tmp_path / "course", code)
    assert result["stand_in_alive_after_kernel_exit"] is False
    pid = int(result["probe"].split()[0])
    assert layout.kernel_ending(sandbox) == {"pid": pid, **recorded}


def test_without_a_reachable_server_the_kernel_boots_on_its_own(tmp_path):
    sandbox = _sandbox(tmp_path, tmp_path / "no-such-server.sock")
    result = _drive(sandbox, tmp_path / "course", "shutdown")
    pid, _parent, _preloaded, in_scratch = result["probe"].split()
    assert int(pid) == result["stand_in"] and not sandbox.kernel_pid.exists()
    assert in_scratch == "True" and result["refused"] == "PermissionError"
    assert result["interrupted"] == "KeyboardInterrupt" and result["after_interrupt"] == "42"
    assert result["debugger"] == "None False"
    assert result["frozen"] == "False"
    assert result["tracebacks"] == "False False"


@pytest.mark.parametrize(("ending", "words"), [
    ({"pid": 1, "exit_code": 3}, "exited with code 3"),
    ({"pid": 1, "signal": 9}, "killed by signal SIGKILL"),
    ({"pid": 1, "signal": 11}, "SIGSEGV during execution (a crash in native code)"),
    ({"pid": 1, "signal": 99}, "killed by signal 99 during"),
])
def test_a_dead_kernels_reason_says_how_it_ended(ending, words):
    assert words in outcome.kernel_death(ending)


NOTEBOOK_SENSITIVE = ("fastcore", "fastai", "fastprogress", "fasthtml", "tqdm.auto", "tqdm.autonotebook", "tqdm.notebook",
                      "matplotlib.pyplot")
"""Libraries that look for an IPython shell when imported: a fork server that imported them would hand every
kernel the answer it got outside a notebook."""


def test_the_fork_servers_preload_imports_nothing_that_looks_for_a_notebook():
    from autograder.grading.sandbox import kernel_forks

    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\nprint(' '.join(sorted(sys.modules)))"
    shown = subprocess.run([sys.executable, "-c", code, *kernel_forks.PRELOAD], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    loaded = set(shown.stdout.split())
    assert {"yaml", "starlette.routing", "torch", "ipykernel.kernelapp"} <= loaded
    assert not [name for name in loaded if name.split(".")[0] in NOTEBOOK_SENSITIVE or name in NOTEBOOK_SENSITIVE], (
        "a preloaded library imports one that looks for a notebook")


AS_IN_A_NOTEBOOK_PROBES = {
    "preloaded": "import sys; print('fastai.vision.all' in sys.modules, 'matplotlib.pyplot' in sys.modules)",
    "notebook": ("import warnings\nwarnings.filterwarnings('ignore')  # fastai's import-time notice, shown when the kernel imports it\n"
                 "from fastai.vision.all import *\nimport fastcore.imports, fastprogress.core, fastprogress.fastprogress as bars\n"
                 "print(fastcore.imports.IN_NOTEBOOK, fastcore.imports.IN_JUPYTER, fastprogress.core.IN_NOTEBOOK, "
                 "bars.progress_bar.__name__, bars.master_bar.__name__)"),
    "shell": "print(type(get_ipython()).__module__, type(get_ipython()).__name__)",
    "folder": "import os; print(URLs.LOCAL_PATH == Path(os.getcwd()), fastai_path('data').parent == Path(os.environ['FASTAI_HOME']))",
    "figure": "import matplotlib, matplotlib.pyplot as plt; plt.plot([1, 2]); plt.show(); print(matplotlib.get_backend())",
}


def test_a_forked_kernel_finds_the_notebook_libraries_imported_as_its_own_import_would(tmp_path, forks):
    """fastai, fastprogress and pyplot come preloaded, yet answer exactly as when the kernel imports them itself."""
    forked = _drive(_sandbox(tmp_path, forks.socket), tmp_path / "course", "shutdown", AS_IN_A_NOTEBOOK_PROBES)
    alone = _drive(_sandbox(tmp_path / "alone", tmp_path / "no-such-server.sock"), tmp_path / "alone" / "course", "shutdown",
                   AS_IN_A_NOTEBOOK_PROBES)
    assert forked.pop("preloaded") == "True True" and alone.pop("preloaded") == "False False"
    expected = {
        "notebook": "True True True NBProgressBar NBMasterBar",
        "shell": "ipykernel.zmqshell ZMQInteractiveShell",
        "folder": "True True",
        "figure": "module://matplotlib_inline.backend_inline",
    }
    assert {name: forked[name] for name in expected} == expected
    assert {name: alone[name] for name in expected} == expected

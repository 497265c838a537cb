"""Start the IPython kernel of one submission inside the sandbox.

Run as ``python -I kernel_boot.py SANDBOX.json -f CONNECTION_FILE`` (the kernel spec that the grading
worker writes does this). This file is standalone: it imports nothing from ``autograder``. In order:

0. when the configuration names a ``holder_pid`` (grading with the namespace sandbox), the process joins that
   submission's bubblewrap sandbox (``enter_sandbox``: no course, no ``autograder`` package, no network, its own
   PID namespace, no capabilities; as root it becomes the sandbox user there) and sets the operating system's
   limits on its processes and writable memory; everything below then runs inside it;
1. resource limits (file size, core dumps, and for a non-root kernel the number of processes);
2. torch is imported and the kernel initialised (reads its connection file) while still trusted;
3. ``autograder`` and ``autograder.checks`` are replaced by the shim of ``check_shim.py``, whose ``check(...)``
   sends the blank and the student's objects to the trusted checker over the data-only channel; changing the
   shim is refused and logged (the grader also flags a test cell that finishes without asking the checker);
4. when started as root, the process drops to the unprivileged sandbox user;
5. a PEP 578 audit hook is installed: from then on importing ``autograder``, reading or writing outside
   the allowed folders, starting processes, signalling other processes, network sockets and ctypes are
   refused with ``PermissionError`` and logged. Audit hooks cannot be removed once installed;
6. the kernel starts serving the notebook's cells.

When the sandbox configuration names a ``fork_server``, this process instead asks that server
(``kernel_forks.py``) for a kernel forked from a process that imported the heavy libraries already; the
fork runs the steps above, and this process stands in for it. Without an answer, it boots as above.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import resource
import signal
import sys
import types

def _limit_resources(config: dict) -> None:
    file_bytes = int(config["max_file_bytes"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing


def _load_module(path: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sibling(name: str) -> str:
    """The path of the standalone file ``name`` beside this one."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


JOINING_MODULE = "autograder_sandbox_joining"


def load_joining() -> types.ModuleType:
    """``joining.py`` (standalone), loaded once per process (the fork server loads it before forking)."""
    if JOINING_MODULE not in sys.modules:
        sys.modules[JOINING_MODULE] = _load_module(_sibling("joining.py"), JOINING_MODULE)
    return sys.modules[JOINING_MODULE]


CHECK_SHIM = _load_module(_sibling("check_shim.py"), "autograder_sandbox_check_shim")
"""``check_shim.py``, loaded with this file: outside the sandbox, where the ``autograder`` package is not."""

AUDIT_HOOK = _load_module(_sibling("audit_hook.py"), "autograder_sandbox_audit_hook")
"""``audit_hook.py``, loaded with this file."""

SOURCE_FILES = (__file__, CHECK_SHIM.__file__, AUDIT_HOOK.__file__)
"""This file, the shim's and the audit hook's: the kernel may read them (its tracebacks show their lines)."""


def _load_peer(path: str) -> types.ModuleType:
    return _load_module(path, "autograder_sandbox_peer")


def _log_refusal(
    log_fd: int, what: str, frame: types.FrameType | None, _write=os.write, _dumps=json.dumps, _len=len,
    _os_error=OSError, _permission_error=PermissionError,
) -> PermissionError:
    """Write a refusal to the violations log; return the error to raise. The log is outside the kernel's folder,
    and the audit hook keeps the notebook from truncating or rewriting it through ``log_fd``.

    Every function and class it uses is bound when this file loads, before any student code runs (changing its
    defaults is refused by the audit hook), so that rebinding a global or a builtin changes nothing here.
    """
    where = []
    while frame is not None and _len(where) < 6:
        where.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        frame = frame.f_back
    try:
        _write(log_fd, (_dumps({"what": what, "where": where}) + "\n").encode())
    except _os_error:
        pass
    return _permission_error(f"autograder sandbox: {what} is not allowed while grading")


def _install_shims(socket_path: str, peer_module: types.ModuleType, log_fd: int) -> None:
    """Make ``from autograder.checks import check`` give the shim that asks the trusted checker (``check_shim.py``);
    changing the shim is refused and logged like the audit hook's refusals."""
    CHECK_SHIM.install(socket_path, peer_module, lambda what, frame: _log_refusal(log_fd, what, frame))


def _drop_privileges(config: dict) -> None:
    if os.geteuid() != 0 or config.get("uid") is None:
        return
    os.setgroups([])
    os.setgid(int(config["gid"]))
    os.setuid(int(config["uid"]))
    processes = int(config["max_processes"])
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


OUTPUT_REFUSAL = "printing more than the output limit"


def _cap_output(limit: int, log_fd: int) -> None:
    """Make the kernel's stdout and stderr refuse to print more than ``limit`` characters in all.

    The coordinator also caps the output it receives; this stops a flood before the kernel buffers it.
    """
    printed = [0]

    def capped(stream):
        write = stream.write

        def capped_write(text):
            printed[0] += len(text)
            if printed[0] > limit:
                _log_refusal(log_fd, OUTPUT_REFUSAL, None)
                raise OSError(f"autograder sandbox: {OUTPUT_REFUSAL} ({limit // 2**20} MiB)")
            return write(text)

        stream.write = capped_write

    for stream in (sys.stdout, sys.stderr):
        try:
            capped(stream)
        except AttributeError:
            continue


def _install_audit_hook(config: dict, log_fd: int) -> None:
    """Install the audit hook (``audit_hook.py``), its refusals logged to ``log_fd``."""
    AUDIT_HOOK.install(config, log_fd, _log_refusal)


def _without_debugger() -> None:
    """Make ``debugpy`` unimportable, so that ipykernel starts without its debugger.

    nbclient never debugs a notebook, and ipykernel's debugger module imports debugpy and pydevd at start-up:
    about 0.2 s of CPU per kernel. ipykernel treats the failed import as "debugpy is not installed".
    """
    sys.modules.setdefault("debugpy", None)  # type: ignore[assignment]


def _lighter_tracebacks(shell, _getmodule_cache=inspect.modulesbyfile) -> None:
    """Make a failing cell's traceback cost what showing it costs, no more (a wrong submission fails several
    test cells; with fastai loaded, each cost about 0.10 CPU s, and now about a quarter of that):

    - IPython 9 formats each error a second time, to keep it in its history for later sessions
      (``_format_exception_for_storage``); a grading kernel has no later session, and keeps only the error's name;
    - ``inspect.getmodule`` looks for a cell's module by going through every loaded module (over 4,000 with
      fastai), several times per frame of a traceback, and finds none: the cell's file is not any module's.
      Each cell's file is named to it before the cell runs, as the file of no module, so that it answers None at
      once, as it did after its search.
    """
    name_of = getattr(getattr(shell, "compile", None), "get_code_name", None)
    if name_of is not None:
        def name_the_cell(info) -> None:
            try:
                _getmodule_cache[name_of(info.raw_cell, None, None)] = CELL_MODULE
            except Exception:  # noqa: BLE001 - an unnamed cell is searched for as before
                pass

        shell.events.register("pre_run_cell", name_the_cell)
    if hasattr(shell, "_format_exception_for_storage"):
        shell._format_exception_for_storage = lambda exception, *args, **kwargs: {
            "ename": type(exception).__name__, "evalue": "", "traceback": []}


CELL_MODULE = "<a notebook cell: no module>"
"""What ``inspect.modulesbyfile`` maps a cell's file to: no module has that name (see ``_lighter_tracebacks``)."""

CONNECTION_COPY = ".connection.json"


def enter_sandbox(config: dict, kernel_argv: list[str], keep_fds: list[int]) -> tuple[list[str], int, types.ModuleType]:
    """Join the submission's namespace sandbox (``config["holder_pid"]``), as the kernel's first step.

    What the kernel needs from outside is taken first: the refusal log (opened; its folder is not in the
    sandbox), the channel's ``peer`` module (loaded; the ``autograder`` package is not in the sandbox) and the
    connection file (copied into the kernel's folder, readable by the kernel's user). Then this process joins the
    sandbox and forks (``joining.join_and_fork``): it stays outside as the waiter, and the child returns,
    under the operating system's limits: ``max_memory_bytes`` of writable memory per process (RLIMIT_DATA) and
    ``max_processes`` processes of its user (RLIMIT_NPROC: in the sandbox's user namespace for an ordinary
    grader, counted over the batch's kernels for a root grader), which hold even when the grader's watcher is
    slow. Call in a single-threaded process.

    Returns:
        IPKernelApp's arguments (naming the copied connection file), the refusal log's descriptor, the peer module.
    """
    joining = load_joining()
    log_fd = os.open(config["violations"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    peer_module = _load_peer(config["peer"])
    run_as = (int(config["uid"]), int(config["gid"])) if config.get("uid") is not None and os.geteuid() == 0 else None
    kernel_argv = list(kernel_argv)
    if "-f" in kernel_argv[:-1]:
        index = kernel_argv.index("-f") + 1
        with open(kernel_argv[index]) as handle:
            connection = handle.read()
        copy = os.path.join(config["scratch"], CONNECTION_COPY)
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(connection)
        if run_as is not None:
            os.chown(copy, *run_as, follow_symlinks=False)
        kernel_argv[index] = copy
    os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(config["scratch"], ".jupyter-runtime")
    joining.join_and_fork(int(config["holder_pid"]), run_as, [*keep_fds, log_fd])
    processes, memory = int(config["max_processes"]), config.get("max_memory_bytes")
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))  # the kernel's user cannot raise them again
    if memory is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (int(memory), int(memory)))
    return kernel_argv, log_fd, peer_module


def boot(config: dict, kernel_argv: list[str], joined: tuple[int, types.ModuleType] | None = None) -> None:
    """Steps 1 to 6 of the module docstring in this process; ``kernel_argv`` are IPKernelApp's arguments.

    ``joined``: the refusal log's descriptor and the peer module, when ``enter_sandbox`` took them.
    """
    _limit_resources(config)
    os.chdir(config["scratch"])
    if joined is not None:
        log_fd, peer_module = joined
    else:
        log_fd = os.open(config["violations"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        peer_module = _load_peer(config["peer"])
    for name in config.get("preload", []):
        importlib.import_module(name)
    _install_shims(config["socket"], peer_module, log_fd)
    _without_debugger()
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(kernel_argv)
    _lighter_tracebacks(app.shell)
    _drop_privileges(config)
    _cap_output(int(config["max_output_bytes"]), log_fd)
    _install_audit_hook(config, log_fd)
    del config
    app.start()


def main() -> None:
    """Boot the kernel here, or, when the sandbox names a fork server, have it forked there and stand in for it."""
    config_path, kernel_argv = sys.argv[1], sys.argv[2:]
    with open(config_path) as handle:
        config = json.load(handle)
    if config.get("fork_server"):
        forks = _load_module(_sibling("kernel_forks.py"), "autograder_kernel_forks")
        if forks.run_forked(config, config_path, kernel_argv):
            return
    del sys.argv[1]
    joined = None
    if config.get("holder_pid"):
        kernel_argv, log_fd, peer_module = enter_sandbox(config, kernel_argv, [])
        joined = (log_fd, peer_module)
    boot(config, kernel_argv, joined)

if __name__ == "__main__":
    main()

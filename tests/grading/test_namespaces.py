"""A process in the namespace sandbox cannot reach the course, even with native code, and honest work still runs.

Each attack runs twice: with ``bwrap`` started by root, and with ``bwrap`` started by an ordinary user (the
unprivileged user ``autograder-ns-test``, made here when the tests run as root; the tests' own user otherwise),
which is also how a root grader runs it (``Mounts.run_as``). A scratch "course" beside the writable folder holds a
fake reference solution and gradebook; the sandbox binds neither. Skips, with the reason, where no sandbox can
be made.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import site
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from forked_child import findings_of_forked_child
from ordinary_user import reachable_folder

from autograder.grading.sandbox import joining, layout, namespaces, shared_data

TEST_USER = "autograder-ns-test"
SYSTEM_PYTHON = "/usr/bin/python3.11"
SECRET = "REFERENCE-SOLUTION-42"


def _readable_by_others(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH) and all(p.stat().st_mode & stat.S_IXOTH for p in Path(path).resolve().parents)
    except OSError:
        return False


def _ordinary_user() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        if not shutil.which("useradd"):
            pytest.skip("needs useradd to make an ordinary user")
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
        entry = pwd.getpwnam(TEST_USER)
    return entry.pw_uid, entry.pw_gid


class Sandboxed:
    """Runs Python code in a sandbox whose writable folder is ``kernel``, beside a scratch ``course``."""

    def __init__(self, who: str, root: Path) -> None:
        self.who, self.course, self.kernel = who, root / "course", root / "kernel"
        self.course.mkdir()
        self.kernel.mkdir()
        (self.course / "reference.py").write_text(f"def mnist_loss(p, t):\n    return '{SECRET}'\n")
        (self.course / "gradebook.db").write_bytes(b"SQLite format 3\0" + SECRET.encode() * 4)
        self.run_as = None
        if who == "root":
            if os.geteuid() != 0:
                pytest.skip("runs bwrap as root: the tests run as an ordinary user")
            self.python, self.read_only, self.env = sys.executable, namespaces.python_paths(), {}
        else:
            packages = site.getsitepackages()
            if os.geteuid() == 0:
                self.run_as = _ordinary_user()
                if not os.path.exists(SYSTEM_PYTHON) or not all(map(_readable_by_others, packages)):
                    pytest.skip(f"the ordinary user needs {SYSTEM_PYTHON} and site-packages it can read")
                for folder in [root, *root.parents]:
                    folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
                os.chown(self.kernel, *self.run_as)
                self.python, self.read_only = SYSTEM_PYTHON, packages
            else:
                self.python, self.read_only = sys.executable, namespaces.python_paths()
            self.env = {"PYTHONPATH": os.pathsep.join(packages)}
        support = namespaces.probe(run_as=self.run_as, read_only=self.read_only)
        if not support.available:
            pytest.skip(f"no namespace sandbox here: {support.reason}")

    def mounts(self, read_only: tuple[str, ...] = ()) -> namespaces.Mounts:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.kernel), "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", **self.env}
        return namespaces.Mounts([*self.read_only, *read_only], str(self.kernel), env=env, forbidden=[str(self.course)], run_as=self.run_as)

    def argv(self, code: str, read_only: tuple[str, ...] = ()) -> list[str]:
        return namespaces.bwrap_argv(self.mounts(read_only), [self.python, "-c", textwrap.dedent(code)])

    def run(self, code: str, limits: namespaces.Limits | None = None, timeout: float = 120, read_only: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(code, read_only), capture_output=True, text=True, timeout=timeout,
                              preexec_fn=namespaces.preexec(limits or namespaces.Limits(), self.run_as))

    def outcomes(self, code: str, read_only: tuple[str, ...] = ()) -> dict:
        """Each ``attempt(name, action)`` of ``code``: how it ended, in words (it must not have printed the secret);
        ``read_only``: more folders the sandbox sees, read-only."""
        done = self.run(textwrap.dedent(ATTEMPT) + textwrap.dedent(code) + "\nprint(json.dumps(outcomes))\n", read_only=read_only)
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["root", "ordinary user"])
def sandboxed(request, tmp_path) -> Sandboxed:
    ordinary = request.param == "ordinary user" and os.geteuid() == 0
    return Sandboxed(request.param, reachable_folder(request, "autograder-namespaces-") if ordinary else tmp_path)


ATTEMPT = """
    import json
    outcomes = {}
    def attempt(name, action):
        try:
            result = action()
            outcomes[name] = "succeeded: " + repr(result)[:200]
        except Exception as error:
            outcomes[name] = type(error).__name__ + ": " + str(error)[:200]
"""


def _all_failed(outcomes: dict, words: tuple[str, ...]) -> None:
    for name, outcome in outcomes.items():
        assert not outcome.startswith("succeeded"), f"{name}: {outcome}"
        assert any(word in outcome for word in words), f"{name}: {outcome}"


@pytest.mark.slow  # imports torch in each sandbox: seconds
def test_honest_work_runs_in_the_sandbox(sandboxed):
    done = sandboxed.run("""
        import numpy, torch
        x = torch.arange(4.0, requires_grad=True)
        (x ** 2).sum().backward()
        open("notes.txt", "w").write("mine")
        print(float((x ** 2).sum()), x.grad.tolist(), float(numpy.mean([1.0, 3.0])), open("notes.txt").read())
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["14.0", "[0.0,", "2.0,", "4.0,", "6.0]", "2.0", "mine"]
    assert (sandboxed.kernel / "notes.txt").read_text() == "mine"


@pytest.mark.slow  # imports torch in each sandbox: seconds
def test_native_code_cannot_read_the_reference_or_the_gradebook(sandboxed):
    reference, gradebook = sandboxed.course / "reference.py", sandboxed.course / "gradebook.db"
    outcomes = sandboxed.outcomes(f"""
    import mmap, os, numpy, torch
    attempt("torch.from_file reference", lambda: bytes(torch.from_file({str(reference)!r}, size=20, dtype=torch.uint8).tolist()))
    attempt("torch.from_file gradebook", lambda: bytes(torch.from_file({str(gradebook)!r}, size=20, dtype=torch.uint8).tolist()))
    attempt("numpy.fromfile", lambda: numpy.fromfile({str(gradebook)!r}, dtype=numpy.uint8).tobytes())
    attempt("mmap", lambda: mmap.mmap(os.open({str(reference)!r}, os.O_RDONLY), 0, prot=mmap.PROT_READ)[:])
    attempt("listing the course", lambda: os.listdir({str(sandboxed.course)!r}))
    """)
    assert set(outcomes) == {"torch.from_file reference", "torch.from_file gradebook", "numpy.fromfile", "mmap", "listing the course"}
    _all_failed(outcomes, ("No such file", "FileNotFoundError"))


@pytest.mark.slow  # imports torch in each sandbox: seconds
def test_native_code_cannot_write_into_the_course(sandboxed):
    before = {path.name: path.read_bytes() for path in sandboxed.course.iterdir()}
    reference, planted = sandboxed.course / "reference.py", sandboxed.course / "planted.pt"
    outcomes = sandboxed.outcomes(f"""
    import numpy, torch
    def overwrite():
        tensor = torch.from_file({str(reference)!r}, shared=True, size=4, dtype=torch.uint8)
        tensor[:] = 88
        return tensor.tolist()
    attempt("torch.from_file shared", overwrite)
    attempt("torch.save", lambda: torch.save(torch.ones(2), {str(planted)!r}))
    attempt("numpy.tofile", lambda: numpy.ones(2).tofile({str(planted)!r}))
    """)
    _all_failed(outcomes, ("No such file", "FileNotFoundError", "Parent directory", "does not exist"))
    assert {path.name: path.read_bytes() for path in sandboxed.course.iterdir()} == before


@pytest.mark.slow  # imports torch in each sandbox: seconds
def test_native_code_cannot_write_the_provisioned_sample_through_its_hard_links(sandboxed, monkeypatch):
    """In a namespace sandbox, the batch's MNIST sample is hard links to the provisioned files even where the
    kernel runs as their owner (an instructor's own user): the sandbox mounts it read-only, so no write, change
    of mode, removal or new link reaches those files."""
    provisioned = sandboxed.kernel.parent / "fastai" / "data" / "mnist_sample"
    image = provisioned / "train" / "3" / "1.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"PNG-AS-PROVISIONED")
    os.chown(image, *(sandboxed.run_as or (os.getuid(), os.getgid())))
    image.chmod(0o644)
    monkeypatch.setenv("FASTAI_HOME", str(provisioned.parent.parent))
    staged = shared_data.stage_data(sandboxed.kernel.parent / "shared", hard_links=True)
    linked = staged / "train" / "3" / "1.png"
    assert linked.stat().st_ino == image.stat().st_ino, "the staged image is the provisioned file itself"
    outcomes = sandboxed.outcomes(f"""
    import os, torch
    def overwrite():
        tensor = torch.from_file({str(linked)!r}, shared=True, size=4, dtype=torch.uint8)
        tensor[:] = 88
        return tensor.tolist()
    def write():
        with open({str(linked)!r}, "r+b") as image:
            return image.write(b"XX")
    attempt("torch.from_file shared", overwrite)
    attempt("open for writing", write)
    attempt("chmod", lambda: os.chmod({str(linked)!r}, 0o666))
    attempt("unlink", lambda: os.unlink({str(linked)!r}))
    attempt("link into the writable folder", lambda: os.link({str(linked)!r}, {str(sandboxed.kernel / "mine.png")!r}))
    """, read_only=(str(staged),))
    assert set(outcomes) == {"torch.from_file shared", "open for writing", "chmod", "unlink", "link into the writable folder"}
    _all_failed(outcomes, ("Read-only file system", "cross-device link"))
    assert image.read_bytes() == b"PNG-AS-PROVISIONED" and image.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(("user", "isolate", "linked"), [(None, False, False), (None, True, True), ((65534, 65534), False, True)],
                         ids=["own user, no namespace sandbox: a copy", "own user, namespace sandbox", "another user"])
def test_the_sample_is_hard_linked_only_where_no_kernel_can_write_it(tmp_path, monkeypatch, user, isolate, linked):
    """Hard links cost a fraction of the copy of 14,434 images; the kernel gets them unless it could write the
    provisioned files through them (running as their owner with no read-only mount)."""
    provisioned = tmp_path / "fastai" / "data" / "mnist_sample"
    image = provisioned / "valid" / "7" / "1.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"PNG")
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))
    monkeypatch.setattr(layout, "stage_matplotlib", lambda shared: shared)
    (tmp_path / "kernel").mkdir()
    data, _, fastai_home = layout._stage_kernel_home(tmp_path / "kernel", tmp_path / "shared", user, isolate)
    staged = fastai_home / "data" / "mnist_sample" / "valid" / "7" / "1.png"
    assert staged.read_bytes() == b"PNG" and staged.resolve().is_relative_to(data)
    assert (staged.stat().st_ino == image.stat().st_ino) == linked


def test_a_loopback_listener_outside_cannot_be_reached(sandboxed):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        outcomes = sandboxed.outcomes(f"""
        import socket
        attempt("connect", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2).getpeername())
        """)
        listener.settimeout(0.2)
        with pytest.raises(socket.timeout):
            listener.accept()
    _all_failed(outcomes, ("Connection refused", "unreachable", "timed out"))


def _running(marker: str) -> list[int]:
    """Pids of the processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _processes_of(uid: int) -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit() and _owner(entry) == uid)


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def test_a_posix_spawn_fork_bomb_is_stopped_by_the_process_limit_and_leaves_nothing(sandboxed):
    if sandboxed.run_as is None and os.geteuid() == 0:
        with pytest.raises(ValueError, match="does not bind root"):
            namespaces.preexec(namespaces.Limits(processes=16))
        return
    uid = sandboxed.run_as[0] if sandboxed.run_as else os.getuid()
    allowed = _processes_of(uid) + 24  # RLIMIT_NPROC counts every process of the user
    marker = f"{time.time() % 1000 + 1000:.6f}"  # a unique sleep duration
    done = sandboxed.run(f"""
        import os
        spawned, error = 0, None
        while spawned < 2000:
            try:
                os.posix_spawn("/usr/bin/sleep", ["sleep", "{marker}"], {{}})
                spawned += 1
            except OSError as caught:
                error = caught.strerror
                break
        print(spawned, error)
    """, limits=namespaces.Limits(processes=allowed), timeout=60)
    assert done.returncode == 0, done.stderr
    spawned, error = done.stdout.split(maxsplit=1)
    assert int(spawned) < 30 and "Resource temporarily unavailable" in error, done.stdout
    assert _running(marker) == []


def test_a_process_that_outlives_its_parent_is_killed(sandboxed):
    marker = f"{time.time() % 1000 + 2000:.6f}"
    code = f"""
        import os, time
        os.posix_spawn("/usr/bin/setsid", ["setsid", "/usr/bin/sleep", "{marker}"], {{}})
        print("started", flush=True)
        time.sleep(600)
    """
    launcher = subprocess.Popen(
        [sandboxed.python, "-c", "import subprocess, sys, json; subprocess.run(json.loads(sys.argv[1]))", json.dumps(sandboxed.argv(code))],
        stdout=subprocess.PIPE, text=True, preexec_fn=namespaces.preexec(namespaces.Limits(), sandboxed.run_as),
    )
    try:
        assert launcher.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 10
        while not _running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running(marker), "the detached process started"
        os.kill(launcher.pid, signal.SIGKILL)  # the grader dies: bwrap's parent is gone
        launcher.wait()
        deadline = time.monotonic() + 10
        while _running(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running(marker) == []
    finally:
        launcher.kill()
        launcher.wait()


def test_a_detached_process_ends_with_the_sandbox(sandboxed):
    marker = f"{time.time() % 1000 + 3000:.6f}"
    done = sandboxed.run(f"""
        import os
        os.posix_spawn("/usr/bin/setsid", ["setsid", "/usr/bin/sleep", "{marker}"], {{}})
        print("left behind")
    """)
    assert done.returncode == 0 and "left behind" in done.stdout, done.stderr
    time.sleep(0.2)
    assert _running(marker) == []


def test_nothing_of_the_course_can_be_bound(tmp_path):
    course = tmp_path / "course"
    (course / "submitted").mkdir(parents=True)
    for read_only, writable in (([str(tmp_path)], "/tmp"), ([], str(course / "submitted")), ([str(course / "submitted" / "x")], "/tmp")):
        with pytest.raises(ValueError, match="must stay hidden"):
            namespaces.bwrap_argv(namespaces.Mounts(read_only, writable, forbidden=[str(course)]), ["true"], bwrap="bwrap")


def test_a_missing_bwrap_is_reported_with_its_reason(monkeypatch):
    monkeypatch.setenv(namespaces.BWRAP_ENV, "/nonexistent/bwrap")
    support = namespaces.probe()
    assert not support.available and "not installed" in support.reason


def test_the_limits_become_rlimits():
    import resource

    limits = namespaces.Limits(memory_bytes=2**30, processes=64, cpu_seconds=900, file_bytes=2**20)
    assert limits.rlimits() == [(resource.RLIMIT_CORE, (0, 0)), (resource.RLIMIT_DATA, (2**30, 2**30)), (resource.RLIMIT_NPROC, (64, 64)),
                                (resource.RLIMIT_CPU, (900, 905)), (resource.RLIMIT_FSIZE, (2**20, 2**20))]


def test_a_process_that_joins_a_holder_sees_only_the_sandbox_and_has_no_capabilities(tmp_path):
    """What the kernel gets from ``join_and_fork``: the sandbox's filesystem, its own PID namespace, no capabilities."""
    if not namespaces.probe().available:
        pytest.skip(f"no namespace sandbox here: {namespaces.probe().reason}")
    course = tmp_path / "course"
    course.mkdir()
    (course / "gradebook.db").write_text("SQLite format 3")
    (tmp_path / "outside.txt").write_text("not bound")
    work = tmp_path / "work"
    work.mkdir()
    holder = namespaces.Holder.start(namespaces.Mounts(namespaces.python_paths(), str(work), forbidden=[str(course)]))

    def look_around() -> dict:
        joining.join_and_fork(holder.pid)
        status = open("/proc/self/status").read()
        capabilities = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))
        return {"capabilities": capabilities, "course": os.path.exists(str(course)), "pid": os.getpid(),
                "outside": os.path.exists(str(tmp_path / "outside.txt"))}

    view = findings_of_forked_child(holder, look_around, work / "view.json")
    assert int(view["capabilities"], 16) == 0, view
    assert view["course"] is False, "the course is in the joined process's filesystem"
    assert view["pid"] < 10, f"not in a PID namespace of its own: pid {view['pid']}"
    assert view["outside"] is False, "a file beside the course, never bound, is in the joined process's filesystem"


@pytest.mark.parametrize("ending", ["exit 7", "SIGKILL", "SIGTERM"])
def test_the_waiter_ends_as_the_joined_process_ends(tmp_path, ending):
    """The grader sees the waiter (the fork server's child): it must end with the kernel's exit code or signal."""
    if not namespaces.probe().available:
        pytest.skip(f"no namespace sandbox here: {namespaces.probe().reason}")
    work = tmp_path / "work"
    work.mkdir()
    holder = namespaces.Holder.start(namespaces.Mounts(namespaces.python_paths(), str(work)))
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked process
            try:
                joining.join_and_fork(holder.pid)
                if ending == "exit 7":
                    os._exit(7)
                os.kill(os.getpid(), getattr(signal, ending))
                time.sleep(5)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
    finally:
        holder.close()
    expected = 7 if ending == "exit 7" else -getattr(signal, ending)
    assert os.waitstatus_to_exitcode(status) == expected

"""Running the grader as an ordinary (non-root) user, as an instructor on a laptop or a JupyterHub does.

Run as root (as CI is), ``ordinary_user`` creates the unprivileged user ``autograder-test`` and runs commands as
that user through ``setpriv``, with an interpreter the user can read: a virtual environment made from the system's
``python3.11`` (``/usr/bin``, readable by all) that imports this environment's installed packages. Run as an
ordinary user, it runs commands as that user directly.
"""

from __future__ import annotations

import os
import pwd
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_USER = "autograder-test"
SYSTEM_PYTHON = Path("/usr/bin/python3.11")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class OrdinaryUser:
    """How to run a command as the ordinary user.

    Attributes:
        prefix: what runs the command as that user (``setpriv ...``; empty when the tests run as one).
        bin_dir: the ``bin/`` of a Python environment that user can run (``python``, ``alembic``).
        uid: that user's id.
    """

    prefix: tuple[str, ...]
    bin_dir: Path
    uid: int

    def python(self, *args: str) -> list[str]:
        """The command line running the environment's ``python ARGS`` as that user."""
        return [*self.prefix, str(self.bin_dir / "python"), *args]

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """A clean environment for that user: its ``PATH`` (nbgrader runs ``alembic`` from it), ``HOME``, a locale."""
        return {"PATH": f"{self.bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}

    def own(self, folder: Path) -> None:
        """Give ``folder`` and everything in it to that user (nothing to do when the tests run as that user)."""
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{self.uid}:{self.uid}", str(folder)], check=True)


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH) and all(p.stat().st_mode & stat.S_IXOTH for p in path.resolve().parents)
    except OSError:
        return False


def _user_environment(folder: Path) -> Path:
    """A venv from the system Python that imports this environment's packages; returns its ``bin/``."""
    venv = folder / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    (purelib,) = venv.glob("lib/python3.*/site-packages")
    lines = [f"import site; site.addsitedir({folder!r})" for folder in site.getsitepackages()]
    (purelib / "autograder-environment.pth").write_text("\n".join(lines) + "\n")
    alembic = venv / "bin" / "alembic"  # nbgrader runs alembic from PATH
    alembic.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom alembic.config import main\nsys.exit(main())\n")
    alembic.chmod(0o755)
    return venv / "bin"


def reachable_folder(request: pytest.FixtureRequest, prefix: str) -> Path:
    """A new folder every user can enter, removed when ``request``'s scope ends.

    It lies outside pytest's temporary root on purpose: pytest makes that root private again (mode 0700) whenever
    a test session starts, so a folder inside it can become unreachable for another user halfway through a run.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    folder.chmod(0o755)
    reachable(folder)
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


def reachable(folder: Path) -> None:
    """Let every user pass through the folders above ``folder`` (the temporary folders pytest made, under /tmp)."""
    for parent in folder.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)


def ordinary_user(folder: Path) -> OrdinaryUser:
    """The ordinary user, with a Python environment under ``folder`` when one is needed; skips when none can be had."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    reachable(folder)
    if os.geteuid() != 0:
        return OrdinaryUser((), Path(sys.executable).parent, os.getuid())
    if not (SYSTEM_PYTHON.is_file() and shutil.which("setpriv") and shutil.which("useradd")):
        pytest.skip("needs /usr/bin/python3.11, setpriv and useradd to run as an ordinary user")
    for needed in [*site.getsitepackages(), str(REPO_ROOT / "autograder")]:
        if not _readable_by_others(Path(needed)):
            pytest.skip(f"{needed} is not readable by other users (the clone lives in a private folder)")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
    entry = pwd.getpwnam(TEST_USER)
    prefix = ("setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups")
    return OrdinaryUser(prefix, _user_environment(folder), entry.pw_uid)

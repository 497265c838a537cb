"""A descriptor is no way around the kernel's audit hook.

``os.open(name, dir_fd=fd)`` opens ``name`` in the folder ``fd`` names, but Python's ``open`` event does not say
so: a hook that took every relative name from the working folder judged another file than the one opened. Other
calls (``os.mkdir``, ``os.remove``, ``os.rename``, ``os.chmod``, ``os.utime``) say their ``dir_fd``, and some take
a descriptor instead of a path (``os.chmod(fd)``). Each test runs in a fresh interpreter with the hook installed as
a kernel installs it, a denied folder inside a readable one (the case of a package installed into the
environment the kernel may read).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from autograder.grading.sandbox import kernel_boot
from tests.grading.test_audit_hook_tamper import PRELUDE, run_script

TRY = """
def attempt(name, action):
    try:
        result = action()
        outcome[name] = "done" if result is None else result
    except PermissionError:
        outcome[name] = "refused"
    except OSError as error:
        outcome[name] = type(error).__name__
"""


def run(tmp_path: Path, body: str, before_hook: str = "") -> tuple[dict, str]:
    """Run ``body`` with the hook installed (``before_hook`` runs just before it is, with the same names); ``outcome``,
    and the refusal log.

    In ``body``: ``READABLE`` (a readable folder), ``SECRET`` (``READABLE/hidden/answers.txt``, in a denied folder),
    ``SCRATCH`` (the kernel's own folder, the working folder) and ``attempt(name, action)``.
    """
    readable, scratch = tmp_path / "data", tmp_path / "scratch"
    (readable / "hidden").mkdir(parents=True)
    (readable / "deep" / "er").mkdir(parents=True)
    (scratch / "sub").mkdir(parents=True)
    (readable / "hidden" / "answers.txt").write_text("the answers")
    (readable / "image.png").write_bytes(b"png")
    log = tmp_path / "refusals.log"
    config = {"scratch": str(scratch), "readable": [str(readable), sys.prefix, sys.base_prefix],
              "denied": [str(readable / "hidden")], "socket": "", "libraries": []}
    prelude = PRELUDE.format(boot=kernel_boot.__file__, secret=str(readable / "hidden" / "answers.txt"),
                             readable=str(readable), scratch=str(scratch), log=str(log), config=config)
    hook_line = "kernel_boot._install_audit_hook("
    head, tail = prelude.split(hook_line, 1)
    script = head + textwrap.dedent(before_hook) + "\n" + hook_line + tail + TRY + textwrap.dedent(body) + "\nprint(json.dumps(outcome))\n"
    return run_script(script, scratch, log)


def test_os_open_in_a_readable_folders_descriptor_cannot_reach_a_denied_file_or_write(tmp_path):
    outcome, log = run(tmp_path, """
        folder = os.open(READABLE, os.O_RDONLY | os.O_DIRECTORY)
        deeper = os.open(os.path.join(READABLE, "deep", "er"), os.O_RDONLY | os.O_DIRECTORY)
        attempt("relative", lambda: os.read(os.open("hidden/answers.txt", os.O_RDONLY, dir_fd=folder), 100).decode())
        attempt("dot-dot", lambda: os.read(os.open("../../hidden/answers.txt", os.O_RDONLY, dir_fd=deeper), 100).decode())
        attempt("opener", lambda: open("hidden/answers.txt", opener=lambda name, flags: os.open(name, flags, dir_fd=folder)).read())
        attempt("write", lambda: os.close(os.open("planted", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=folder)))
        attempt("allowed read", lambda: os.read(os.open("image.png", os.O_RDONLY, dir_fd=folder), 100).decode())
        attempt("open() write", lambda: open("written.txt", "w").close())
        attempt("os.open write by a relative name", lambda: os.close(os.open("mine.txt", os.O_WRONLY | os.O_CREAT, 0o600)))
    """)
    assert outcome["relative"] == "refused", outcome
    assert outcome["dot-dot"] == "refused", outcome
    assert outcome["opener"] == "refused", outcome
    assert outcome["write"] == "refused", outcome
    assert not (tmp_path / "data" / "planted").exists()
    assert outcome["allowed read"] == "png"  # a readable file is still readable through the descriptor
    assert outcome["open() write"] == "done"  # open() takes no descriptor: its relative names are the working folder's
    # os.open's event does not say which folder a relative name is in: once a readable folder was opened as a
    # descriptor, os.open may not create a file by a relative name (an absolute one, or open(), still can)
    assert outcome["os.open write by a relative name"] == "refused"
    assert "hidden/answers.txt" in log and "writing" in log and "data/planted" in log


def test_os_open_writes_through_a_descriptor_of_the_own_folder(tmp_path):
    outcome, log = run(tmp_path, """
        own = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
        attempt("own write", lambda: os.close(os.open("mine.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=own)))
        attempt("relative write", lambda: os.close(os.open("other.txt", os.O_WRONLY | os.O_CREAT, 0o600)))
        attempt("secret", lambda: os.read(os.open(SECRET, os.O_RDONLY), 100).decode())
    """)
    assert outcome["own write"] == "done" and (tmp_path / "scratch" / "sub" / "mine.txt").exists()
    assert outcome["relative write"] == "done" and (tmp_path / "scratch" / "other.txt").exists()
    assert outcome["secret"] == "refused"
    assert log.count("\n") == 1 and "hidden/answers.txt" in log


def test_calls_that_name_their_dir_fd_are_judged_in_that_folder(tmp_path):
    outcome, log = run(tmp_path, """
        folder = os.open(READABLE, os.O_RDONLY | os.O_DIRECTORY)
        attempt("mkdir", lambda: os.mkdir("made", dir_fd=folder))
        attempt("remove", lambda: os.remove("image.png", dir_fd=folder))
        attempt("rename", lambda: os.rename("image.png", "moved.png", src_dir_fd=folder, dst_dir_fd=folder))
        attempt("chmod", lambda: os.chmod("image.png", 0o777, dir_fd=folder))
        attempt("utime", lambda: os.utime("image.png", (0, 0), dir_fd=folder))
        own = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
        attempt("own mkdir", lambda: os.mkdir("made", dir_fd=own))
    """)
    for name in ("mkdir", "remove", "rename", "chmod", "utime"):
        assert outcome[name] == "refused", (name, outcome)
    data = tmp_path / "data"
    assert (data / "image.png").exists() and not (data / "made").exists() and not (data / "moved.png").exists()
    assert (data / "image.png").stat().st_mtime > 0 and (data / "image.png").stat().st_mode & 0o777 != 0o777
    assert outcome["own mkdir"] == "done" and (tmp_path / "scratch" / "sub" / "made").is_dir()
    assert "os.mkdir" in log and "data/made" in log


def test_a_descriptor_given_as_the_path_is_judged_as_its_file(tmp_path):
    outcome, log = run(tmp_path, """
        image = os.open(os.path.join(READABLE, "image.png"), os.O_RDONLY)
        attempt("chmod", lambda: os.chmod(image, 0o777))
        attempt("utime", lambda: os.utime(image, (0, 0)))
        attempt("setxattr", lambda: os.setxattr(image, "user.planted", b"1"))
        mine = os.open("mine.txt", os.O_WRONLY | os.O_CREAT, 0o600)
        attempt("own chmod", lambda: os.chmod(mine, 0o644))
        attempt("listdir", lambda: sorted(os.listdir(os.open(READABLE, os.O_RDONLY | os.O_DIRECTORY))))
    """)
    for name in ("chmod", "utime", "setxattr"):
        assert outcome[name] == "refused", (name, outcome)
    image = tmp_path / "data" / "image.png"
    assert image.stat().st_mode & 0o777 != 0o777 and image.stat().st_mtime > 0
    assert outcome["own chmod"] == "done"
    assert outcome["listdir"] == ["deep", "hidden", "image.png"]
    assert "data/image.png" in log


def test_a_folder_descriptor_held_before_the_hook_counts_too(tmp_path):
    outcome, _ = run(tmp_path, """
        attempt("inherited", lambda: os.read(os.open("hidden/answers.txt", os.O_RDONLY, dir_fd=HELD), 100).decode())
    """, before_hook="""
        HELD = os.open(READABLE, os.O_RDONLY | os.O_DIRECTORY)
    """)
    assert outcome["inherited"] == "refused", outcome


def test_the_standard_librarys_descriptor_walks_still_work_in_the_own_folder(tmp_path):
    """``shutil.rmtree`` and ``os.fwalk`` open each folder with ``os.open(name, dir_fd=...)``."""
    outcome, log = run(tmp_path, """
        import shutil, tempfile
        def build():
            os.makedirs("tree/a/b")
            for name in ("tree/x.txt", "tree/a/y.txt", "tree/a/b/z.txt"):
                with open(name, "w") as handle:
                    handle.write("text")
        build()
        attempt("fwalk", lambda: sorted(name for _, _, files, _ in os.fwalk("tree") for name in files))
        attempt("rmtree", lambda: shutil.rmtree("tree"))
        outcome["gone"] = not os.path.exists("tree")
        def temporary():
            with tempfile.TemporaryDirectory(dir=".") as folder:
                os.makedirs(os.path.join(folder, "inner"))
                with open(os.path.join(folder, "inner", "f.txt"), "w") as handle:
                    handle.write("text")
        attempt("tempdir", temporary)
        attempt("read after", lambda: open(os.path.join(READABLE, "image.png")).read())
    """)
    assert outcome["fwalk"] == ["x.txt", "y.txt", "z.txt"], outcome
    assert outcome["rmtree"] == "done" and outcome["gone"] is True, outcome
    assert outcome["tempdir"] == "done", outcome
    assert outcome["read after"] == "png"
    assert log == ""


def test_the_refusal_log_can_be_neither_truncated_nor_rewritten(tmp_path):
    """The kernel holds the log's descriptor (appending) to write its refusals: it may not cut the log short or
    clear ``O_APPEND`` to write over what is there, also through a copy of the descriptor."""
    outcome, log = run(tmp_path, """
        import fcntl
        attempt("refused first", lambda: open(SECRET).read())
        copy = os.dup(log_fd)
        attempt("truncate", lambda: os.truncate(log_fd, 0))
        attempt("ftruncate copy", lambda: os.ftruncate(copy, 0))
        attempt("clear append", lambda: fcntl.fcntl(copy, fcntl.F_SETFL, 0))
        attempt("reopen", lambda: open(f"/proc/self/fd/{log_fd}", "w").close())
        attempt("overwrite", lambda: (os.lseek(copy, 0, os.SEEK_SET), os.write(copy, b" " * 40)) and None)
        attempt("own flags", lambda: fcntl.fcntl(os.open("mine.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), fcntl.F_SETFL, 0))
    """)
    for name in ("refused first", "truncate", "ftruncate copy", "clear append", "reopen"):
        assert outcome[name] == "refused", (name, outcome)
    assert outcome["own flags"] == 0, outcome
    entries = [json.loads(line)["what"] for line in log.splitlines() if line.strip().startswith("{")]
    assert entries[0].endswith("hidden/answers.txt"), entries  # the first refusal is still there, whole
    assert "changing the flags of the sandbox's log" in entries


def test_a_closed_log_stops_the_logging_not_the_refusals(tmp_path):
    """What the security page says of the one thing the notebook can do to its log: close its descriptor."""
    outcome, log = run(tmp_path, """
        os.close(log_fd)
        attempt("secret", lambda: open(SECRET).read())
        attempt("write", lambda: open(os.path.join(READABLE, "planted.txt"), "w").close())
    """)
    assert outcome["secret"] == "refused" and outcome["write"] == "refused", outcome
    assert not (tmp_path / "data" / "planted.txt").exists()
    assert log == ""

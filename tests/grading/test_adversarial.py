"""Hostile and broken submissions graded in ONE batch with honest ones, through the CLI.

The bar: no hostile submission scores more than its honest work earns, the grader never crashes, every honest
submission is graded exactly, nothing is written outside the submission's own work area, no process outlives
its submission, and each hostile submission's status says what happened.

The batch is the catalogue of ``adversarial.py``, graded by ``autograder grade`` in a subprocess, in a scratch
course that also holds a bystander (a student outside the batch, with a submitted and an autograded notebook and
a gradebook entry). The course, a temporary HOME and a folder outside the course are listed (sizes, mtimes and
hashes) before and compared after. A watchdog thread bounds the whole run (processes, memory, disk, time) and
records any process of the batch that leaves the grader's process tree; should a defence fail badly, it kills
what the batch started, by pid, and the tests say so.

Run: ``MNIST_SAMPLE_ARCHIVE=... python -m pytest tests/grading/test_adversarial.py -s`` (``-s`` shows the table).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import psutil
import pytest
from adversarial import ASSIGNMENT, BYSTANDER, KERNEL_DIED, NOTEBOOK, SANDBOX, TOTAL, Context, Entry, catalogue, partial
from ordinary_user import ordinary_user, reachable_folder
from test_pipeline import make_course

from autograder.grading.record import record_zero
from autograder.grading.sandbox.layout import disk_usage
from autograder.grading.results import Status
from autograder.nbgrader_api import cell_grades, generate_assignment

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

JOBS = 2
CELL_TIMEOUT = 45
"""Seconds per cell: the imports cell (torch, matplotlib) alone can take over 20 s on a loaded 2-core machine."""
CPU_LIMIT = 600
"""CPU seconds per submission: the 10,000-cell notebook is the slowest (about 6 minutes of wall time under load)."""
MEMORY_LIMIT = 2048
BATCH_DEADLINE = 45 * 60
SECRET_NAME = "AUTOGRADER_TEST_SECRET"

INVOKER, ORDINARY_USER = "the tests' user", "an ordinary user"
"""Who runs the grader: the batch runs once as the tests' own user (root in CI) and, under root, once more as an
ordinary user (``ordinary_user.py``), whose kernels sit in a sandbox of the user's own user namespace."""
ONLY_VARIABLE = "ADVERSARIAL_ONLY"
"""A comma-separated list of submission names: grade only those (to iterate on a defence); the others skip."""
REUSE_VARIABLE = "ADVERSARIAL_REUSE"
"""The base folder of a finished batch (it holds ``batch.json``): check it again instead of grading anew."""

ENTRIES = [e for e in catalogue() if not os.environ.get(ONLY_VARIABLE) or e.name in os.environ[ONLY_VARIABLE].split(",")]
BY_NAME = {entry.name: entry for entry in ENTRIES}
HOSTILE = [pytest.param(entry, id=entry.name) for entry in ENTRIES if entry.hostile]
HONEST = [pytest.param(entry, id=entry.name) for entry in ENTRIES if not entry.hostile]
ALL = [pytest.param(entry, id=entry.name) for entry in ENTRIES]


# ---------------------------------------------------------------- the watchdog


@dataclass
class Watch:
    """What the watchdog saw while the batch ran."""

    fired: list[str] = field(default_factory=list)
    escaped: dict[int, str] = field(default_factory=dict)
    leftovers: dict[int, str] = field(default_factory=dict)
    peak_processes: int = 0
    peak_rss_mb: float = 0.0


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} ppid {proc.ppid()} {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


def _kill_by_pid(processes: list[psutil.Process]) -> None:
    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(processes, timeout=10)


class Watchdog(threading.Thread):
    """Bounds the batch and records processes of the batch outside the grader's process tree.

    A process belongs to the batch when it descends from the grading command, carries the batch's token in its
    environment (``ADVERSARIAL_RUN`` or ``HOSTILE_TOKEN``) or runs in a folder under the batch's base folder.
    """

    MAX_PROCESSES = 300
    MAX_RSS = 10 * 2**30
    MAX_DISK = 6 * 2**30
    ESCAPED_AFTER_SCANS = 3

    def __init__(self, root_pid: int, base: Path, token: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.base, self.token, self.deadline = str(base), token, deadline
        self.watch = Watch()
        self.done = threading.Event()
        self._outside_scans: dict[int, int] = {}
        self._last_disk_check = 0.0
        self._me = os.getpid()

    def belongs(self, proc: psutil.Process) -> bool:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            environ = proc.environ()
            if self.token in (environ.get("ADVERSARIAL_RUN", ""), environ.get("HOSTILE_TOKEN", "")):
                return True
            cwd = proc.cwd()
            return cwd == self.base or cwd.startswith(self.base + os.sep)
        except (psutil.Error, OSError):
            return False

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)] if self.root.is_running() else []
        except psutil.Error:
            return []

    def strays(self, tree: list[psutil.Process]) -> list[psutil.Process]:
        inside = {proc.pid for proc in tree} | {self._me}
        return [proc for proc in psutil.process_iter() if proc.pid not in inside and self.belongs(proc)]

    def _fire(self, why: str, processes: list[psutil.Process]) -> None:
        self.watch.fired.append(why)
        _kill_by_pid(processes)

    def run(self) -> None:
        while not self.done.is_set():
            tree = self.tree()
            strays = self.strays(tree)
            everything = tree + strays
            rss = 0
            for proc in everything:
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.watch.peak_processes = max(self.watch.peak_processes, len(everything))
            self.watch.peak_rss_mb = max(self.watch.peak_rss_mb, rss / 2**20)
            for proc in strays:
                self._outside_scans[proc.pid] = self._outside_scans.get(proc.pid, 0) + 1
                if self._outside_scans[proc.pid] >= self.ESCAPED_AFTER_SCANS and proc.pid not in self.watch.escaped:
                    self.watch.escaped[proc.pid] = _describe(proc)
            if len(everything) > self.MAX_PROCESSES:
                self._fire(f"{len(everything)} processes, over the safety bound of {self.MAX_PROCESSES}", everything)
            elif rss > self.MAX_RSS:
                self._fire(f"{rss / 2**30:.1f} GiB resident, over the safety bound of {self.MAX_RSS / 2**30:.0f} GiB", everything)
            elif time.monotonic() > self.deadline:
                self._fire(f"the batch ran past {BATCH_DEADLINE} s", everything)
            elif time.monotonic() - self._last_disk_check > 5:
                self._last_disk_check = time.monotonic()
                used = disk_usage(Path(self.base))
                if used > self.MAX_DISK:
                    self._fire(f"{used / 2**30:.1f} GiB on disk, over the safety bound of {self.MAX_DISK / 2**30:.0f} GiB", everything)
            self.done.wait(1.0)

    def finish(self, grace: float = 15.0) -> None:
        """Stop watching; whatever of the batch still runs after ``grace`` seconds is a leftover (then killed)."""
        self.done.set()
        self.join()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.strays([]):
            time.sleep(0.5)
        remaining = self.strays([])
        self.watch.leftovers = {proc.pid: _describe(proc) for proc in remaining}
        _kill_by_pid(remaining)


# ---------------------------------------------------------------- snapshots


def listing(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: files with (size, mtime, sha256), folders and links by existence."""
    found: dict[str, tuple] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            found[relative + "/"] = ("folder",)
        elif path.is_file():
            stat = path.stat()
            found[relative] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def changed(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def submissions_per_student(course: Path) -> dict[str, int]:
    """How many submissions of the assignment the course's gradebook holds per student (read-only)."""
    with sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT s.student_id, COUNT(*) FROM submitted_assignment s JOIN assignment a ON s.assignment_id = a.id "
            "WHERE a.name = ? GROUP BY s.student_id",
            (ASSIGNMENT,),
        ).fetchall()
    return dict(rows)


def grades_of(course: Path, student: str) -> list[tuple[str, float, float]]:
    return [(grade.cell, grade.score, grade.max_score) for grade in cell_grades(course, ASSIGNMENT, student)]


# ---------------------------------------------------------------- the batch


@dataclass
class Batch:
    ctx: Context
    base: Path
    incoming: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    results: dict[str, dict]
    raw_results: dict[str, str]
    watch: Watch
    course_before: dict[str, tuple]
    course_after: dict[str, tuple]
    home_before: dict[str, tuple]
    home_after: dict[str, tuple]
    outside_after: dict[str, tuple]
    bystander_before: list[tuple[str, float, float]]
    secret: str

    @property
    def course(self) -> Path:
        return self.ctx.course


def _prepare(base: Path) -> tuple[Context, Path]:
    course = make_course(base / "course")
    home, outside, tmp = base / "home", base / "outside", base / "tmp"
    for folder in (home, outside, tmp):
        folder.mkdir()
    (home / ".profile").write_text("# the grading command's HOME: nothing may change here\n")
    ctx = Context(course=course.resolve(), repo=REPO_ROOT, token=uuid.uuid4().hex, outside=outside.resolve(), home=home.resolve())
    generate_assignment(ctx.course, ASSIGNMENT)
    # a bystander graded earlier: its files and gradebook entry must survive the batch untouched
    for kind in ("submitted", "autograded"):
        target = ctx.course / kind / BYSTANDER / ASSIGNMENT / NOTEBOOK
        target.parent.mkdir(parents=True)
        target.write_text(nbformat.writes(partial(ctx)))
    record_zero(ctx.course, ASSIGNMENT, BYSTANDER)
    incoming = base / "incoming"
    for entry in ENTRIES:
        target = incoming / entry.name / ASSIGNMENT / NOTEBOOK
        target.parent.mkdir(parents=True)
        target.write_text(nbformat.writes(entry.build(ctx)))
    return ctx, incoming


def _save(found: Batch) -> None:
    state = {
        "ctx": {"course": str(found.ctx.course), "repo": str(found.ctx.repo), "token": found.ctx.token,
                "outside": str(found.ctx.outside), "home": str(found.ctx.home)},
        "incoming": str(found.incoming), "returncode": found.returncode, "seconds": found.seconds, "secret": found.secret,
        "watch": asdict(found.watch), "course_before": found.course_before, "home_before": found.home_before,
        "bystander_before": found.bystander_before,
    }
    (found.base / "batch.json").write_text(json.dumps(state))


def _load(base: Path) -> Batch:
    state = json.loads((base / "batch.json").read_text())
    ctx = Context(**{key: value if key == "token" else Path(value) for key, value in state["ctx"].items()})
    watch = state["watch"]
    watch = Watch(watch["fired"], {int(k): v for k, v in watch["escaped"].items()}, {int(k): v for k, v in watch["leftovers"].items()},
                  watch["peak_processes"], watch["peak_rss_mb"])
    as_tuples = lambda listing_: {key: tuple(value) for key, value in listing_.items()}  # noqa: E731
    return _collect(ctx, base, Path(state["incoming"]), state["returncode"], state["seconds"], watch, as_tuples(state["course_before"]),
                    as_tuples(state["home_before"]), [tuple(g) for g in state["bystander_before"]], state["secret"])


def _collect(ctx, base, incoming, returncode, seconds, watch, course_before, home_before, bystander_before, secret) -> Batch:
    folder = ctx.course / "grading" / ASSIGNMENT
    raw = {path.stem: path.read_text() for path in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    results = {}
    for student, text in raw.items():
        try:
            results[student] = json.loads(text)
        except json.JSONDecodeError:
            continue
    return Batch(
        ctx, base, incoming, returncode, (base / "stdout.txt").read_text(errors="replace"),
        (base / "stderr.txt").read_text(errors="replace"), seconds, results, raw, watch,
        course_before, listing(ctx.course), home_before, listing(ctx.home), listing(ctx.outside), bystander_before, secret,
    )


@pytest.fixture(scope="module", params=[INVOKER, ORDINARY_USER])
def batch(request, tmp_path_factory, mnist_folder) -> Batch:
    """The batch graded by the tests' own user and, when that is root, again by an ordinary user."""
    as_ordinary_user = request.param == ORDINARY_USER
    if as_ordinary_user and os.geteuid() != 0:
        pytest.skip("the tests run as an ordinary user: the first pass is that pass")
    if os.environ.get(REUSE_VARIABLE):
        if as_ordinary_user:
            pytest.skip(f"{REUSE_VARIABLE} checks one finished batch again")
        return _load(Path(os.environ[REUSE_VARIABLE]))
    base = reachable_folder(request, "autograder-adversarial-") if as_ordinary_user else tmp_path_factory.mktemp("adversarial").resolve()
    ctx, incoming = _prepare(base)
    secret = f"secret-{uuid.uuid4().hex}"
    arguments = [
        "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(ctx.course), "--input", str(incoming),
        "-j", str(JOBS), "--cell-timeout", str(CELL_TIMEOUT), "--cpu-limit", str(CPU_LIMIT), "--memory-limit", str(MEMORY_LIMIT),
    ]
    variables = {"HOME": str(ctx.home), "TMPDIR": str(base / "tmp"), "ADVERSARIAL_RUN": ctx.token, SECRET_NAME: secret, "COLUMNS": "250"}
    if as_ordinary_user:
        user = ordinary_user(base / "user-environment")
        (base / "fastai").mkdir()
        user.own(base)
        command, env = user.python(*arguments), user.env(ctx.home, **variables, FASTAI_HOME=str(base / "fastai"))
    else:
        command, env = [sys.executable, *arguments], {**os.environ, **variables}
    course_before, home_before = listing(ctx.course), listing(ctx.home)
    bystander_before = grades_of(ctx.course, BYSTANDER)
    start = time.monotonic()
    with open(base / "stdout.txt", "wb") as out, open(base / "stderr.txt", "wb") as err:
        process = subprocess.Popen(command, cwd=base, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        watchdog = Watchdog(process.pid, base, ctx.token, start + BATCH_DEADLINE)
        watchdog.start()
        try:
            process.wait()
        finally:
            watchdog.finish()
    seconds = time.monotonic() - start
    found = _collect(ctx, base, incoming, process.returncode, seconds, watchdog.watch, course_before, home_before, bystander_before, secret)
    _save(found)
    (base / "table.txt").write_text(table(found))
    return found


def score(result: dict) -> float:
    return round(sum(cell["score"] for cell in result.get("cells", [])), 2)


def max_score(result: dict) -> float:
    return sum(cell["max_score"] for cell in result.get("cells", []))


def table(found: Batch) -> str:
    lines = [f"{'submission':24s} {'status':18s} {'score':>6s} {'honest':>6s}  reason"]
    for entry in ENTRIES:
        result = found.results.get(entry.name)
        if result is None:
            lines.append(f"{entry.name:24s} {'(no result)':18s}")
            continue
        reason = " ".join(result.get("reason", "").split())[:110]
        lines.append(f"{entry.name:24s} {result['status']:18s} {score(result):6g} {entry.honest():6g}  {reason}")
    lines.append(f"grader exit code {found.returncode}, {found.seconds:.0f} s for {len(ENTRIES)} submissions at -j {JOBS}; "
                 f"peak {found.watch.peak_processes} processes, {found.watch.peak_rss_mb:.0f} MiB")
    return "\n".join(lines)


def result_of(found: Batch, entry: Entry) -> dict:
    assert entry.name in found.results, f"no result for {entry.name}; the grader said:\n{found.stdout[-3000:]}\n{found.stderr[-3000:]}"
    return found.results[entry.name]


# ---------------------------------------------------------------- the table


def test_print_the_table(batch, capsys):
    with capsys.disabled():
        print("\n" + table(batch))
    assert batch.results, "the batch produced no result at all"


# ---------------------------------------------------------------- the grader itself


def test_the_safety_bounds_were_never_needed(batch):
    assert not batch.watch.fired, f"the watchdog had to stop the batch: {batch.watch.fired}"


def test_the_grader_exits_with_the_documented_code_and_no_traceback(batch):
    output = batch.stdout + batch.stderr
    assert "Traceback (most recent call last)" not in output, output[-5000:]
    assert batch.returncode in (0, 1), f"exit code {batch.returncode}:\n{output[-3000:]}"
    unknown = sorted({r["status"] for r in batch.results.values()} - {s.value for s in Status})
    assert not unknown, f"statuses unknown to autograder.grading.results.Status: {unknown}"
    ungradable = sorted(name for name, r in batch.results.items() if not Status(r["status"]).gradable)
    assert batch.returncode == (1 if ungradable else 0), f"exit code {batch.returncode}; ungradable: {ungradable}"


def test_every_submission_has_exactly_one_result_and_one_gradebook_entry(batch):
    folder = batch.course / "grading" / ASSIGNMENT
    assert sorted(batch.raw_results) == sorted(BY_NAME), "one result file per submission, no other"
    unreadable = sorted(set(batch.raw_results) - set(batch.results))
    assert not unreadable, f"result files that do not parse: {unreadable}"
    assert all(result["student"] == name for name, result in batch.results.items())
    assert not list(folder.rglob("*.tmp")), "half-written result files"
    counts = submissions_per_student(batch.course)
    wrong = {student: counts.get(student, 0) for student in [*BY_NAME, BYSTANDER] if counts.get(student, 0) != 1}
    assert not wrong, f"gradebook submissions per student (expected 1 each): {wrong}"
    assert set(counts) == {*BY_NAME, BYSTANDER}, f"gradebook students outside the batch: {set(counts) - {*BY_NAME, BYSTANDER}}"


def test_the_ten_thousand_cell_notebook_does_not_crash_the_grader(batch):
    if "many_cells" not in BY_NAME:
        pytest.skip(f"many_cells is not in {ONLY_VARIABLE}")
    result = result_of(batch, BY_NAME["many_cells"])
    assert result["status"] != Status.GRADER_ERROR.value, result["reason"]
    assert result["status"] in BY_NAME["many_cells"].expected_statuses, result


# ---------------------------------------------------------------- scores


@pytest.mark.parametrize("entry", HONEST)
def test_honest_submissions_get_exactly_their_points(batch, entry):
    result = result_of(batch, entry)
    assert result["status"] == Status.GRADED.value, result
    assert score(result) == pytest.approx(entry.honest()), result
    assert max_score(result) == TOTAL


@pytest.mark.parametrize("entry", HOSTILE)
def test_no_hostile_submission_scores_more_than_its_honest_work(batch, entry):
    result = result_of(batch, entry)
    assert score(result) <= entry.honest() + 1e-9, (
        f"forged pass: {entry.name} ({entry.what}) scored {score(result)}, its honest work earns {entry.honest()}; "
        f"cells {[(c['blank'], c['score']) for c in result['cells']]}"
    )
    if result["cells"]:
        assert max_score(result) == TOTAL, f"the assignment is worth {TOTAL}, not {max_score(result)}"


@pytest.mark.parametrize("entry", ALL)
def test_the_gradebook_holds_the_saved_scores(batch, entry):
    result = result_of(batch, entry)
    grades = grades_of(batch.course, entry.name)
    assert round(sum(g[1] for g in grades), 2) == score(result), f"gradebook {grades} vs result {result['cells']}"
    assert sum(g[2] for g in grades) == TOTAL


def test_the_bystanders_grades_are_untouched(batch):
    assert grades_of(batch.course, BYSTANDER) == batch.bystander_before


@pytest.mark.parametrize("entry", ALL)
def test_check_reports_kept_for_feedback_claim_no_more_than_the_score(batch, entry):
    """The report of a test cell (shown on the feedback page) comes from the checks, not from the student."""
    result = result_of(batch, entry)
    for cell in result["cells"]:
        report = cell.get("report")
        if report is not None:
            assert float(report.get("score", 0)) <= cell["score"] + 1e-9, f"{cell['blank']}: report {report} but score {cell['score']}"


# ---------------------------------------------------------------- statuses


@pytest.mark.parametrize("entry", ALL)
def test_each_status_says_what_happened(batch, entry):
    result = result_of(batch, entry)
    assert result["status"] in entry.expected_statuses, (
        f"{entry.name} ({entry.what}): status {result['status']!r}, expected one of {sorted(entry.expected_statuses)}; "
        f"reason {result['reason']!r}"
    )
    if result["status"] != Status.GRADED.value:
        assert result["reason"].strip(), "a status other than graded needs a reason"
    if result["status"] in (SANDBOX, KERNEL_DIED) and entry.reason_words:
        assert any(word in result["reason"].lower() for word in entry.reason_words), (
            f"the reason should name the refused action or the kernel's end (one of {entry.reason_words}): {result['reason']!r}"
        )


# ---------------------------------------------------------------- nothing written outside


def _allowed_in_course(path: str, batch: Batch) -> bool:
    parts = path.rstrip("/").split("/")
    if batch.ctx.token in path:
        return False
    if parts[0] in ("grading", ".autograder.lock") or path in ("autograded/", "submitted/", "feedback/"):
        return True
    if parts[0] in ("gradebook.db", "gradebook.db-journal", "gradebook.db-wal", "gradebook.db-shm"):
        return True
    if parts[0] == "reports":  # the class report that grade writes at the end
        return parts[1:] in ([], [ASSIGNMENT]) or (parts[1] == ASSIGNMENT and parts[2:] in (["index.html"], ["mistakes.csv"], ["report.json"]))
    if parts[0] in ("autograded", "submitted", "feedback") and len(parts) >= 2 and parts[1] in BY_NAME:
        if len(parts) <= 3:
            return len(parts) < 3 or parts[2] == ASSIGNMENT
        return len(parts) == 4 and parts[2] == ASSIGNMENT and parts[3] in (NOTEBOOK, "timestamp.txt", "feedback.html")
    return False


def test_the_course_changes_only_where_grades_are_written(batch):
    unexpected = [path for path in changed(batch.course_before, batch.course_after) if not _allowed_in_course(path, batch)]
    assert not unexpected, "written outside the grader's outputs:\n" + "\n".join(
        f"  {path}: {batch.course_before.get(path, 'absent')} -> {batch.course_after.get(path, 'absent')}" for path in unexpected[:40]
    )


def test_sentinels_are_untouched(batch):
    for kind in ("submitted", "autograded"):
        path = f"{kind}/{BYSTANDER}/{ASSIGNMENT}/{NOTEBOOK}"
        assert batch.course_after.get(path) == batch.course_before.get(path), f"the bystander's {kind} notebook changed"
    for path in ("nbgrader_config.py", f"source/{ASSIGNMENT}/{NOTEBOOK}", f"release/{ASSIGNMENT}/{NOTEBOOK}"):
        assert batch.course_after.get(path) == batch.course_before.get(path), f"{path} changed"


@pytest.mark.parametrize("entry", ALL)
def test_the_staged_submission_is_what_the_student_sent(batch, entry):
    """No submission can replace another's notebook before it is graded."""
    staged = batch.course / "submitted" / entry.name / ASSIGNMENT / NOTEBOOK
    sent = batch.incoming / entry.name / ASSIGNMENT / NOTEBOOK
    assert staged.read_bytes() == sent.read_bytes(), f"{entry.name}'s staged notebook is not what the student sent (replaced by another?)"
    planted = [p.name for p in staged.parent.iterdir() if p.name not in (NOTEBOOK, "timestamp.txt")]
    assert not planted, f"files planted beside {entry.name}'s submission: {planted}"


def test_nothing_is_planted_in_home_or_outside(batch):
    planted = [path for path in [*batch.home_after, *batch.outside_after] if batch.ctx.token in path]
    assert not planted, f"files planted by submissions: {planted}"
    assert not batch.outside_after, f"written into a folder outside the course: {sorted(batch.outside_after)}"


def test_home_is_untouched(batch):
    differences = changed(batch.home_before, batch.home_after)
    assert not differences, f"the grading command's HOME changed (kernels must get their own): {differences[:20]}"


@pytest.mark.parametrize("entry", ALL)
def test_no_secret_of_the_grading_environment_reaches_a_result(batch, entry):
    """A secret counts only if the submission could not know it: write_outside names HOME in its own code."""
    text = batch.raw_results.get(entry.name, "")
    submitted = (batch.incoming / entry.name / ASSIGNMENT / NOTEBOOK).read_text()
    secrets = (batch.secret, os.environ.get("MNIST_SAMPLE_ARCHIVE"), str(batch.ctx.home))
    shown = [secret for secret in secrets if secret and secret in text and secret not in submitted]
    assert not shown, f"{entry.name}'s result shows {shown}: the kernel's environment was not scrubbed"


# ---------------------------------------------------------------- processes


def test_no_process_escapes_the_grader(batch):
    assert not batch.watch.escaped, "processes of the batch left the grader's process tree:\n" + "\n".join(
        list(batch.watch.escaped.values())[:10]
    ) + f"\n({len(batch.watch.escaped)} in all)"


def test_no_process_is_left_after_the_batch(batch):
    assert not batch.watch.leftovers, "still running after the grader exited:\n" + "\n".join(list(batch.watch.leftovers.values())[:10])


NATIVE_SECRETS = ("SQLite format 3", "BEGIN SOLUTION")


def _outputs_of(found: Batch, student: str) -> str:
    executed = sorted((found.ctx.course / "autograded" / student / ASSIGNMENT).glob("*.ipynb"))
    return "".join(executed[0].read_text(errors="replace") if executed else "") + found.raw_results.get(student, "")


@pytest.mark.skipif("native_read" not in BY_NAME, reason="native_read not in this batch")
def test_native_code_reads_nothing_of_the_reference_the_gradebook_or_source(batch):
    reference = (REPO_ROOT / "autograder" / "reference" / "gradient_descent.py").read_bytes()[:120].decode("latin-1")
    outputs = _outputs_of(batch, "native_read")
    assert "torch.from_file" in outputs  # the attack ran
    for secret in (*NATIVE_SECRETS, json.dumps(reference)[1:60]):
        assert secret not in outputs


@pytest.mark.skipif("native_connect" not in BY_NAME, reason="native_connect not in this batch")
def test_native_code_cannot_reach_a_loopback_listener_of_the_grader(batch):
    from adversarial import loopback_listener

    assert "no connection" in _outputs_of(batch, "native_connect")
    assert loopback_listener()["connections"] == []

"""Collecting submissions from nbgrader's layout, flat folders and zips, and staging them for nbgrader."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.grading.results import Status
from autograder.grading.submissions import (
    Submission,
    SubmissionError,
    ZipLimits,
    collect,
    stage,
    student_id,
    unpack_zip,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "04_mnist_sgd"
EXPECTED = f"{ASSIGNMENT}.ipynb"
RELEASE = REPO_ROOT / "release" / ASSIGNMENT / EXPECTED
OTHER_RELEASE = REPO_ROOT / "release" / "01_gradient_descent" / "01_gradient_descent.ipynb"


def valid_bytes() -> bytes:
    return RELEASE.read_bytes()


def plain_notebook_bytes() -> bytes:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hello')")])
    return nbformat.writes(nb).encode()


def put(path: Path, data: bytes | str = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def run_collect(source: Path, work: Path, limits: ZipLimits | None = None) -> dict[str, Submission]:
    found = collect(source, ASSIGNMENT, EXPECTED, work, RELEASE, limits)
    assert [s.student for s in found] == sorted(s.student for s in found)
    return {s.student: s for s in found}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


# --- the three input forms ---------------------------------------------------------------------------------

def nbgrader_tree(root: Path) -> Path:
    submitted = root / "submitted"
    put(submitted / "alice" / ASSIGNMENT / EXPECTED, valid_bytes())
    put(submitted / "alice" / ASSIGNMENT / "timestamp.txt", "2024-01-01 12:00:00")
    put(submitted / "alice" / "01_gradient_descent" / "01_gradient_descent.ipynb", OTHER_RELEASE.read_bytes())
    put(submitted / "bob" / ASSIGNMENT / "my work.ipynb", valid_bytes())
    put(submitted / "carol" / ASSIGNMENT / EXPECTED, valid_bytes())
    put(submitted / "carol" / ASSIGNMENT / "scratch.ipynb", plain_notebook_bytes())
    put(submitted / "carol" / ASSIGNMENT / "notes.txt", "extra files are ignored")
    put(submitted / "carol" / ASSIGNMENT / ".ipynb_checkpoints" / "04_mnist_sgd-checkpoint.ipynb", b"{")
    put(submitted / "dave" / ASSIGNMENT / "a.ipynb", valid_bytes())
    put(submitted / "dave" / ASSIGNMENT / "b.ipynb", valid_bytes())
    (submitted / "erin" / ASSIGNMENT).mkdir(parents=True)
    put(submitted / "frank" / "01_gradient_descent" / "01_gradient_descent.ipynb", OTHER_RELEASE.read_bytes())
    put(submitted / "gina" / ASSIGNMENT / "answers.py", "print('no notebook')")
    return submitted


def check_nbgrader_tree(found: dict[str, Submission]) -> None:
    assert sorted(found) == ["alice", "bob", "carol", "dave", "erin", "frank", "gina"]
    assert found["alice"].status is None and found["alice"].notebook.name == EXPECTED
    assert found["bob"].status is None and found["bob"].notebook.name == "my work.ipynb"
    assert found["carol"].status is None and found["carol"].notebook.name == EXPECTED
    assert found["dave"].status == Status.MISSING
    assert "a.ipynb" in found["dave"].reason and "b.ipynb" in found["dave"].reason and EXPECTED in found["dave"].reason
    assert found["erin"].status == Status.EMPTY
    assert found["frank"].status == Status.MISSING and f"no {ASSIGNMENT}/ folder" in found["frank"].reason
    assert found["gina"].status == Status.MISSING and "answers.py" in found["gina"].reason


def test_nbgrader_layout_from_the_course_folder_or_submitted_itself(tmp_path: Path) -> None:
    submitted = nbgrader_tree(tmp_path / "course")
    check_nbgrader_tree(run_collect(tmp_path / "course", tmp_path / "work"))
    check_nbgrader_tree(run_collect(submitted, tmp_path / "work"))
    assert not (tmp_path / "work").exists(), "folders are read in place"


def test_flat_folder_of_notebooks_named_by_student(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    put(flat / "alice.ipynb", valid_bytes())
    put(flat / f"bob_{ASSIGNMENT}.ipynb", valid_bytes())
    put(flat / "Carol Smith.ipynb", valid_bytes())
    put(flat / "readme.txt", "not a submission")
    found = run_collect(flat, tmp_path / "work")
    assert sorted(found) == ["Carol_Smith", "alice", "bob"]
    assert all(s.status is None for s in found.values())
    assert found["bob"].notebook == flat / f"bob_{ASSIGNMENT}.ipynb"


@pytest.mark.parametrize("top", ["", "export/"])
def test_zip_of_flat_notebooks(tmp_path: Path, top: str) -> None:
    archive = make_zip(tmp_path / "lms.zip", {
        f"{top}alice.ipynb": valid_bytes(),
        f"{top}bob_{ASSIGNMENT}.ipynb": valid_bytes(),
        "__MACOSX/._alice.ipynb": b"\x00\x05\x16\x07",
    })
    found = run_collect(archive, tmp_path / "work")
    assert sorted(found) == ["alice", "bob"]
    assert all(s.status is None for s in found.values())
    assert all((tmp_path / "work") in s.notebook.parents for s in found.values())


@pytest.mark.parametrize("top", ["", "Assignment 4 export/"])
def test_zip_of_student_folders(tmp_path: Path, top: str) -> None:
    archive = make_zip(tmp_path / "lms.zip", {
        f"{top}alice/{EXPECTED}": valid_bytes(),
        f"{top}alice/data.csv": b"1,2,3",
        f"{top}bob/work/notebook.ipynb": valid_bytes(),
        f"{top}carol/broken.ipynb": b"{\"cells\": [",
        f"{top}dave/": b"",
    })
    found = run_collect(archive, tmp_path / "work")
    assert sorted(found) == ["alice", "bob", "carol", "dave"]
    assert found["alice"].status is None and found["bob"].status is None
    assert found["bob"].notebook.name == "notebook.ipynb"
    assert found["carol"].status == Status.CORRUPT and "broken.ipynb" in found["carol"].reason
    assert found["dave"].status == Status.EMPTY


def test_zip_of_nbgrader_layout(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "course.zip", {
        f"submitted/alice/{ASSIGNMENT}/{EXPECTED}": valid_bytes(),
        f"submitted/bob/{ASSIGNMENT}/{EXPECTED}": valid_bytes(),
    })
    found = run_collect(archive, tmp_path / "work")
    assert sorted(found) == ["alice", "bob"] and all(s.status is None for s in found.values())


def test_missing_source_or_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="does not exist"):
        run_collect(tmp_path / "nowhere", tmp_path / "work")
    with pytest.raises(SubmissionError, match="not a readable zip"):
        run_collect(put(tmp_path / "fake.zip", b"not a zip at all"), tmp_path / "work")
    with pytest.raises(SubmissionError, match="neither a folder nor a .zip"):
        run_collect(put(tmp_path / "notes.txt", "hello"), tmp_path / "work")


# --- one status per problem ----------------------------------------------------------------------------------

def test_each_bad_notebook_gets_its_status(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    put(flat / "truncated.ipynb", valid_bytes()[:500])
    put(flat / "old.ipynb", json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}}))
    put(flat / "binary.ipynb", b"\xff\xfe\x00garbage")
    put(flat / "other.ipynb", OTHER_RELEASE.read_bytes())
    put(flat / "plain.ipynb", plain_notebook_bytes())
    put(flat / "good.ipynb", valid_bytes())
    found = run_collect(flat, tmp_path / "work")
    assert found["truncated"].status == Status.CORRUPT
    assert "truncated.ipynb is not valid JSON" in found["truncated"].reason
    assert found["old"].status == Status.CORRUPT and "nbformat 4" in found["old"].reason
    assert found["binary"].status == Status.CORRUPT and "binary.ipynb" in found["binary"].reason
    assert found["other"].status == Status.WRONG_ASSIGNMENT
    assert "01_gradient_descent" in found["other"].reason and "other.ipynb" in found["other"].reason
    assert found["plain"].status == Status.WRONG_ASSIGNMENT and "no nbgrader cells" in found["plain"].reason
    assert found["good"].status is None


def test_misnamed_single_notebook_is_graded(tmp_path: Path) -> None:
    put(tmp_path / "in" / "alice" / ASSIGNMENT / "Untitled1.ipynb", valid_bytes())
    found = run_collect(tmp_path / "in", tmp_path / "work")
    assert found["alice"].status is None and found["alice"].reason == ""
    assert found["alice"].notebook.name == "Untitled1.ipynb"


def test_a_notebook_with_some_test_cells_deleted_is_still_this_assignment(tmp_path: Path) -> None:
    nb = nbformat.read(RELEASE, as_version=4)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_sigmoid"]
    put(tmp_path / "flat" / "alice.ipynb", nbformat.writes(nb))
    assert run_collect(tmp_path / "flat", tmp_path / "work")["alice"].status is None


def test_duplicate_student_ids_keep_the_first(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    put(flat / "alice.ipynb", valid_bytes())
    put(flat / f"alice_{ASSIGNMENT}.ipynb", valid_bytes())
    found = collect(flat, ASSIGNMENT, EXPECTED, tmp_path / "work", RELEASE)
    assert [s.student for s in found] == ["alice", "alice"]
    first, second = found
    assert first.status is None and first.notebook.name == "alice.ipynb"
    assert second.status == Status.MISSING and "duplicate student id" in second.reason
    assert f"alice_{ASSIGNMENT}.ipynb" in second.reason and second.notebook is None


def test_student_ids_are_sanitized_and_never_empty(tmp_path: Path) -> None:
    assert student_id("Alice Smith") == "Alice_Smith"
    assert student_id("  bob.o'neil ") == "bob.o_neil"
    assert student_id("../../etc") == "etc"
    for raw in ["", "...", "ééé", " - "]:
        with pytest.raises(SubmissionError, match="names no student"):
            student_id(raw)
    put(tmp_path / "flat" / EXPECTED, valid_bytes())
    with pytest.raises(SubmissionError, match=f"cannot tell whose notebook {EXPECTED} is"):
        run_collect(tmp_path / "flat", tmp_path / "work")


# --- unsafe archives -------------------------------------------------------------------------------------------

def assert_refused(archive: Path, work: Path, match: str, limits: ZipLimits | None = None) -> None:
    with pytest.raises(SubmissionError, match=match):
        run_collect(archive, work, limits)
    leftovers = [p for p in work.rglob("*")] if work.exists() else []
    assert leftovers == [], "a refused archive leaves nothing unpacked"


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "slip.zip", {"alice.ipynb": valid_bytes(), "../evil.ipynb": valid_bytes()})
    assert_refused(archive, tmp_path / "sub" / "work", r"'\.\./evil\.ipynb' escapes")
    assert not (tmp_path / "sub" / "evil.ipynb").exists() and not (tmp_path / "evil.ipynb").exists()
    nested = make_zip(tmp_path / "nested.zip", {"alice/../../evil.ipynb": b"{}"})
    assert_refused(nested, tmp_path / "work2", "escapes")
    windows = make_zip(tmp_path / "windows.zip", {"alice\\..\\..\\evil.ipynb": b"{}"})
    assert_refused(windows, tmp_path / "work3", "escapes")


def test_an_inner_dotdot_that_stays_inside_is_fine(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ok.zip", {"alice/tmp/../alice.ipynb": valid_bytes()})
    assert run_collect(archive, tmp_path / "work")["alice"].status is None


@pytest.mark.parametrize("name", ["/tmp/evil.ipynb", "C:/evil.ipynb", "C:\\evil.ipynb"])
def test_absolute_paths_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "abs.zip", {"alice.ipynb": valid_bytes(), name: valid_bytes()})
    assert [i.filename for i in zipfile.ZipFile(archive).infolist()][1] == name
    assert_refused(archive, tmp_path / "work", "absolute path")


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice.ipynb", valid_bytes())
        link = zipfile.ZipInfo("bob.ipynb")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    assert_refused(archive, tmp_path / "work", "'bob.ipynb' is a symbolic link")


def test_zip_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {"alice.ipynb": valid_bytes(), "bob.ipynb": bytes(20 * 2**20)})
    assert_refused(archive, tmp_path / "work", "compressed .* to 1")


def test_size_and_count_limits(tmp_path: Path) -> None:
    members = {f"s{i}.ipynb": valid_bytes() for i in range(4)}
    archive = make_zip(tmp_path / "many.zip", members)
    size = len(valid_bytes())
    assert_refused(archive, tmp_path / "w1", "more than the limit of 3", ZipLimits(max_members=3))
    assert_refused(archive, tmp_path / "w2", "unpacks to more than the limit", ZipLimits(max_total_bytes=3 * size))
    assert_refused(archive, tmp_path / "w3", "'s0.ipynb' unpacks to", ZipLimits(max_member_bytes=size - 1))
    assert len(run_collect(archive, tmp_path / "w4", ZipLimits(max_members=4, max_total_bytes=4 * size))) == 4


def test_a_member_larger_than_declared_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("alice.ipynb", b"x" * 1000)
    data = bytearray(buffer.getvalue())
    # lower the uncompressed size recorded in the central directory from 1000 to 10
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")
    archive = put(tmp_path / "liar.zip", bytes(data))
    with pytest.raises(SubmissionError):
        unpack_zip(archive, tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


# --- staging ----------------------------------------------------------------------------------------------------

def test_stage_copies_gradable_notebooks_under_the_expected_name(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    put(flat / "alice.ipynb", valid_bytes())
    put(flat / "bob.ipynb", b"{broken")
    course = tmp_path / "course"
    submissions = collect(flat, ASSIGNMENT, EXPECTED, tmp_path / "work", RELEASE)
    stage(submissions, course, ASSIGNMENT, EXPECTED)
    assert (course / "submitted" / "alice" / ASSIGNMENT / EXPECTED).read_bytes() == valid_bytes()
    assert not (course / "submitted" / "bob").exists()


def test_stage_renames_a_misnamed_notebook_and_keeps_its_timestamp(tmp_path: Path) -> None:
    source = put(tmp_path / "export" / "alice" / ASSIGNMENT / "mine.ipynb", valid_bytes())
    put(source.parent / "timestamp.txt", "2024-01-01 12:00:00")
    course = tmp_path / "course"
    stage(collect(tmp_path / "export", ASSIGNMENT, EXPECTED, tmp_path / "work", RELEASE), course, ASSIGNMENT, EXPECTED)
    target = course / "submitted" / "alice" / ASSIGNMENT
    assert sorted(p.name for p in target.iterdir()) == [EXPECTED, "timestamp.txt"]
    assert (target / "timestamp.txt").read_text() == "2024-01-01 12:00:00"


def test_stage_in_place_leaves_the_file_alone(tmp_path: Path) -> None:
    course = tmp_path / "course"
    notebook = put(course / "submitted" / "alice" / ASSIGNMENT / EXPECTED, valid_bytes())
    put(notebook.parent / "timestamp.txt", "2024-01-01 12:00:00")
    misnamed = put(course / "submitted" / "bob" / ASSIGNMENT / "Untitled.ipynb", valid_bytes())
    before = notebook.stat().st_mtime_ns
    submissions = collect(course / "submitted", ASSIGNMENT, EXPECTED, tmp_path / "work", RELEASE)
    stage(submissions, course, ASSIGNMENT, EXPECTED)
    assert notebook.stat().st_mtime_ns == before and notebook.read_bytes() == valid_bytes()
    assert misnamed.exists() and (misnamed.parent / EXPECTED).read_bytes() == valid_bytes()


def test_stage_skips_ungradable_and_notebookless_submissions(tmp_path: Path) -> None:
    source = put(tmp_path / "x.ipynb", valid_bytes())
    stage([
        Submission("a", source, Status.CORRUPT, "bad"),
        Submission("b", None, Status.MISSING, "none"),
        Submission("c", source),
    ], tmp_path / "course", ASSIGNMENT, EXPECTED)
    assert sorted(p.name for p in (tmp_path / "course" / "submitted").iterdir()) == ["c"]


def test_release_notebook_must_be_readable(tmp_path: Path) -> None:
    put(tmp_path / "flat" / "alice.ipynb", valid_bytes())
    with pytest.raises(SubmissionError, match="release notebook"):
        collect(tmp_path / "flat", ASSIGNMENT, EXPECTED, tmp_path / "work", tmp_path / "missing.ipynb")

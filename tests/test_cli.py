"""The CLI forwards to the package and reports bad input clearly."""

from __future__ import annotations

from click.testing import CliRunner

from autograder import cli


def test_provision_reports_a_missing_archive(tmp_path):
    result = CliRunner().invoke(cli.main, ["provision", "--data", str(tmp_path / "missing.tgz"), "--force"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_validate_rejects_an_unknown_assignment(tmp_path, monkeypatch, mnist_folder):
    result = CliRunner().invoke(cli.main, ["validate", "--assignment", "99_nothing"])
    assert result.exit_code == 2
    assert "unknown assignment" in result.output


def test_release_outside_a_course_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOGRADER_COURSE", raising=False)
    result = CliRunner().invoke(cli.main, ["release"])
    assert result.exit_code == 2 and "no course folder" in result.output


def test_train_forwards_to_report_runs(monkeypatch, tmp_path):
    from autograder.reference import runs

    calls = {}

    def fake_report(folder, device=None, seed=42):
        calls.update(folder=folder, device=device, seed=seed)
        return [runs.RunRow("linear1", 0.97, 0.96, 20, 1.0)]

    monkeypatch.setattr(cli, "_provision", lambda data: tmp_path)
    monkeypatch.setattr(runs, "report_runs", fake_report)
    result = CliRunner().invoke(cli.main, ["train", "--device", "cpu", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert calls == {"folder": tmp_path, "device": "cpu", "seed": 7}
    assert "0.9700" in result.output

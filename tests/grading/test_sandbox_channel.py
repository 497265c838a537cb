"""The hidden checks give the same verdicts over the sandbox's data-only channel as in-process.

Every mutant and every correct alternative of the check catalogs is run twice: in this process (as
``nbgrader autograde`` does in the kernel) and through ``Peer``/``handle_session`` (as hardened grading
does, the student's objects living on the other end of a socket). Check by check, the outcomes must be
identical, so hardening changes where student code runs and nothing else.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from autograder.checks import run_checks
from autograder.checks.thresholds import TRAIN_MODEL
from autograder.grading.sandbox.checker import CheckerConfig, handle_session
from autograder.grading.sandbox.peer import ChannelError, Peer, Remote
from autograder.reference import gradient_descent as gd
from autograder.reference import mnist_sgd as ms

CATALOGS = Path(__file__).parents[1] / "checks"


def _load_catalog() -> ModuleType:
    """The catalogs' shared module (``tests/checks/catalog.py``), which imports each assignment's catalog."""
    spec = importlib.util.spec_from_file_location("sandbox_catalog", CATALOGS / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _first_per_blank(catalog: list, count: int) -> list:
    """The first ``count`` entries of each blank (the whole catalogs run in-process in tests/checks)."""
    chosen, seen = [], {}
    for entry in catalog:
        if seen.get(entry.blank, 0) < count and not getattr(entry, "real_data", False):
            seen[entry.blank] = seen.get(entry.blank, 0) + 1
            chosen.append(entry)
    return chosen


CATALOG = _load_catalog()
MUTANTS = _first_per_blank(CATALOG.all_mutants(), 2)
ALTERNATIVES = _first_per_blank(CATALOG.all_alternatives(), 1)


def remote_report(blank: str, objects: dict[str, Any], tmp_path: Path) -> dict:
    """Run ``blank``'s checks on ``objects`` through the channel (checker in a thread) and return its report."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = str(tmp_path / "checker.sock")
    config = CheckerConfig(path, str(tmp_path / "reports"), {blank: 1.0}, "cpu")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def serve_once() -> None:
        connection, _ = server.accept()
        with connection:
            handle_session(connection, config)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    try:
        answer = Peer(client, "s").request({"op": "session", "blank": blank}, (), objects)
    finally:
        client.close()
        thread.join(60)
        server.close()
    return answer["report"]


def _outcomes(report: dict) -> list[tuple[str, bool]]:
    return [(result["name"], result["passed"]) for result in report["results"]]


def _same_verdicts(blank: str, objects: dict, tmp_path: Path) -> None:
    local = run_checks(blank, 1.0, objects, "cpu").to_json()
    remote = remote_report(blank, objects, tmp_path)
    assert _outcomes(remote) == _outcomes(local), f"local {local['results']}\nremote {remote['results']}"
    assert remote["score"] == local["score"]


@pytest.mark.slow
@pytest.mark.parametrize("wrong", [pytest.param(m, id=m.id) for m in MUTANTS])
def test_each_mutant_fails_the_same_checks_over_the_channel(wrong, tmp_path):
    _same_verdicts(wrong.blank, wrong.objects, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("right", [pytest.param(a, id=a.id) for a in ALTERNATIVES])
def test_each_alternative_passes_the_same_checks_over_the_channel(right, tmp_path):
    _same_verdicts(right.blank, right.objects, tmp_path)


@pytest.mark.real_data
@pytest.mark.slow
def test_training_on_the_real_sample_passes_over_the_channel(mnist_folder, tmp_path):
    report = remote_report("train_model", {"train_model": ms.train_model}, tmp_path)
    assert report["score"] == 1.0, report["results"]
    assert report["artifacts"]["curves"]["final_accuracy"] >= TRAIN_MODEL.threshold


def test_a_student_object_cannot_reach_the_checkers_internals(tmp_path):
    """Names starting with ``_`` are never served, and the checker's objects arrive only as proxies."""
    leaks: list[str] = []

    def train_epoch(model, batches, opt, loss_func):
        for target, name in ((opt, "__class__"), (loss_func, "__globals__"), (opt, "__dict__"), (model, "_private")):
            try:
                value = target._peer.request({"op": "getattr", "h": target._handle, "name": name})
                leaks.append(f"{name} served: {type(value).__name__}")
            except AttributeError:
                pass
        inner = opt.inner
        if not isinstance(inner, Remote) or not isinstance(loss_func, Remote):
            leaks.append("a checker object crossed as itself")
        raise RuntimeError("stop")

    report = remote_report("train_epoch", {"train_epoch": train_epoch}, tmp_path)
    assert report["score"] == 0.0
    assert not leaks, leaks


def test_malformed_messages_end_the_session_without_a_report(tmp_path):
    path = str(tmp_path / "checker.sock")
    config = CheckerConfig(path, str(tmp_path / "reports"), {"mse": 1.0}, "cpu")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    outcome: list = []

    def serve_once() -> None:
        connection, _ = server.accept()
        with connection:
            try:
                outcome.append(handle_session(connection, config))
            except ChannelError as error:
                outcome.append(error)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    client.sendall(b"\xff\xff\xff\xff\x00\x00\x00\x00garbage")
    thread.join(30)
    client.close()
    server.close()
    assert outcome and isinstance(outcome[0], ChannelError)
    assert not (tmp_path / "reports").exists()


def test_gradients_and_in_place_updates_cross_the_channel(tmp_path):
    """The reference's own functions pass every check of their blanks when run on the other end."""
    for blank, function in (("mse", gd.mse), ("gd_step", gd.gd_step), ("apply_step", gd.apply_step), ("BasicOptim", ms.BasicOptim)):
        report = remote_report(blank, {blank: function}, tmp_path / blank)
        assert report["score"] == 1.0, (blank, report["results"])


class Tally:
    """An object to lend: a method, a data attribute, and a private method."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    def _reset(self) -> None:
        self.total = 0


def _lend(value: Any) -> tuple[Any, list[str]]:
    """Lend ``value`` from an owner peer served in a thread; returns its proxy and the ops the owner served."""
    owner_socket, user_socket = socket.socketpair()
    owner, user, served = Peer(owner_socket, "o"), Peer(user_socket, "u"), []

    def serve_forever() -> None:
        try:
            while True:
                header, buffers = owner._receive()
                served.append(header.get("op"))
                owner.serve(header, buffers)
        except ChannelError:
            pass

    buffers: list = []
    proxy = user.decode(owner.encode(value, buffers), buffers)
    threading.Thread(target=serve_forever, daemon=True).start()
    return proxy, served


def test_a_method_call_is_one_round_trip():
    tally, served = _lend(Tally())
    assert tally.add(2) == 2 and tally.add(3) == 5
    assert served == ["callmethod", "callmethod"]
    assert tally.total == 5 and served[-1] == "getattr"  # data attributes are still read from the owner


def test_an_instance_attribute_shadowing_a_method_is_asked_for():
    shadowed = Tally()
    shadowed.add = lambda amount: f"shadow {amount}"
    tally, served = _lend(shadowed)
    assert tally.add(1) == "shadow 1"
    assert served == ["getattr", "call"]


def test_private_methods_are_neither_listed_nor_served():
    tally, served = _lend(Tally())
    with pytest.raises(AttributeError):
        tally._reset()
    assert served == []  # refused locally: the method list has no private names
    with pytest.raises(AttributeError, match="not accessible"):
        object.__getattribute__(tally, "_peer").request({"op": "callmethod", "h": object.__getattribute__(tally, "_handle"), "name": "_reset"})
    assert served == ["callmethod"]


@pytest.fixture(autouse=True)
def _cpu_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)

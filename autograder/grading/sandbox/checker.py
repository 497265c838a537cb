"""The trusted checker: runs the hidden checks against a sandboxed kernel's functions, over the channel.

Run as ``python -m autograder.grading.sandbox.checker CONFIG.json``. It listens on a Unix socket; each
``check(...)`` call in the student's kernel (the shim of ``check_shim.py``) opens one connection (a
*session*), names a blank and lends its functions. The checker runs that blank's checks with ``Remote``
proxies in place of the student's objects, so student code never runs here; it saves the report as
``<reports>/<blank>.json`` (the only source of scores in hardened grading) and sends the printed lines back
for the notebook.

The points of each blank come from the checker's configuration (the released notebook), never from the
kernel.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import warnings
from pathlib import Path

import torch

from autograder.grading.sandbox.checker_config import CheckerConfig
from autograder.grading.sandbox.lifetime import watch_parent
from autograder.grading.sandbox.peer import ChannelError, Peer, Remote

MATH_THREADS = 1
"""The checker's torch threads, whatever the kernel's: its tensors are small (a batch of 256 images at most), and the
calls into the kernel come between its operations, so a second thread would only spin in OpenMP's wait loop
(at ``-j 1``, where each kernel gets two threads, that spinning cost more CPU than all of the checks)."""


def _save_report(folder: Path, blank: str, report: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{blank}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(target)


def handle_session(connection: socket.socket, config: CheckerConfig) -> str | None:
    """Serve one ``check(...)`` call: run the blank's checks, save and answer the report.

    Returns:
        The blank checked, or None when the session was malformed or the blank unknown.
    """
    from autograder.checks import run_checks
    from autograder.checks.report import format_report

    peer = Peer(connection, "c", eager_gradients=True)  # a loss the kernel calls comes back with its gradients
    header, buffers = peer._receive()
    if header.get("op") != "session" or not isinstance(header.get("blank"), str):
        return None
    blank = header["blank"]
    try:
        objects = peer.decode(header.get("kwargs"), buffers)
    except ChannelError:
        objects = None
    if blank not in config.points or not isinstance(objects, dict):
        answer = {"re": header.get("id"), "op": "raise", "type": "KeyError",
                  "message": f"no hidden checks for a blank named {blank!r} in this assignment"}
        _answer(peer, answer)
        return None
    student = {name: value for name, value in objects.items() if isinstance(name, str) and isinstance(value, Remote)}
    report = run_checks(blank, config.points[blank], student, config.device)
    data = report.to_json()
    _save_report(Path(config.reports), blank, data)
    answer = {"re": header.get("id"), "op": "return"}
    buffers: list = []
    answer["value"] = peer.encode({"text": format_report(report), "score": report.score, "report": data}, buffers)
    _answer(peer, answer, buffers)
    return blank


def _answer(peer: Peer, answer: dict, buffers: list | None = None) -> None:
    try:
        peer._send(answer, buffers or [])
    except ChannelError:
        pass


def listen(config: CheckerConfig) -> socket.socket:
    """Bind the checker's socket (the kernel may connect as soon as this returns).

    The socket is made connectable by every user: a kernel started as root runs as the unprivileged
    sandbox user, and the folder it lives in is what keeps other processes out.
    """
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(config.socket_path)
    os.chmod(config.socket_path, 0o777)
    server.listen(8)
    return server


def serve(server: socket.socket, config: CheckerConfig) -> None:
    """Accept sessions one at a time until killed."""
    while True:
        connection, _ = server.accept()
        with connection:
            try:
                handle_session(connection, config)
            except ChannelError:
                continue


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    watch_parent()  # ends this process when the grading worker that started it is gone (even after kill -9)
    torch.set_num_threads(MATH_THREADS)
    config = CheckerConfig.load(Path(argv[1]))
    server = listen(config)
    from autograder.checks.runner import known_blanks, warm_up

    known_blanks()  # import the check modules now, while the notebook's first cells run
    warm_up()
    serve(server, config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

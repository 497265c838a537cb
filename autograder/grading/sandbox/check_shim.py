"""The ``check`` a notebook runs in hardened grading: it asks the trusted checker, it checks nothing itself.

``autograder.checks.check`` runs a blank's hidden checks in the calling process: plain ``nbgrader autograde``,
the instructor's own notebook runs, the tests. Under ``autograder grade`` the student's kernel cannot import
``autograder`` at all; ``kernel_boot.py`` calls ``install`` before any cell runs, so the notebook's
``from autograder.checks import check`` finds the modules made here. This ``check`` sends the blank's name and
the student's objects over the data-only channel (``peer.py``) to the trusted checker (``checker.py``), which
runs the checks against proxies of those objects, saves the report (the only source of scores) and answers
with the text to print and the score.

This file is standalone, like ``kernel_boot.py``: it imports only the standard library, and is loaded by
path before the kernel enters its sandbox.
"""

from __future__ import annotations

import socket
import sys
import time
import types
from typing import Any, Callable

CHECKER_WAIT_SECONDS = 120
"""How long the first check waits for the checker, which starts alongside the kernel, to listen."""

Refusal = Callable[[str, "types.FrameType | None"], PermissionError]
"""Logs a refused action (what, the frame that tried it) and returns the error to raise."""


def _connect(socket_path: str, _monotonic=time.monotonic, _sleep=time.sleep) -> socket.socket:
    """A connection to the checker; until its socket is bound and listening, connecting is retried.

    The clock and ``sleep`` are bound when this file loads, before any student code runs.
    """
    deadline = _monotonic() + CHECKER_WAIT_SECONDS
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(socket_path)
            return connection
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):  # not bound, listening or opened yet
            connection.close()
            if _monotonic() > deadline:
                raise
            _sleep(0.05)


def make_check(socket_path: str, peer_class: type) -> Callable[..., Any]:
    """The ``check(blank, points, **objects)`` of the shim: one checker session per call, over ``peer_class``."""

    def check(blank: str, points: float = 0, **objects):
        """Run the hidden checks of ``blank`` in the trusted checker; print its report, return its score.

        ``points`` is ignored: the checker takes each blank's points from the released notebook.
        """
        connection = _connect(socket_path)
        try:
            answer = peer_class(connection, "s").request({"op": "session", "blank": blank}, (), objects)
        finally:
            connection.close()
        print(answer["text"])
        return answer["score"]

    return check


def _sealed_module_class(refuse: Refusal) -> type:
    """A module type whose attributes cannot be changed once sealed; every try is refused through ``refuse``."""
    getframe = sys._getframe

    class ShimModule(types.ModuleType):
        def __setattr__(self, name: str, value: object) -> None:
            if "_sealed" in self.__dict__:
                raise refuse(f"changing {self.__name__}.{name} (the grading module imported from autograder)", getframe(1))
            super().__setattr__(name, value)

        def __delattr__(self, name: str) -> None:
            raise refuse(f"deleting {self.__name__}.{name} (the grading module imported from autograder)", getframe(1))

    return ShimModule


def install(socket_path: str, peer_module: types.ModuleType, refuse: Refusal) -> None:
    """Make ``import autograder`` and ``from autograder.checks import check`` give the shim, sealed.

    Args:
        socket_path: the checker's Unix socket.
        peer_module: the channel (``peer.py``, loaded by path), whose ``Peer`` carries each session.
        refuse: logs a refused change of the shim modules and returns the error to raise.
    """
    module_class = _sealed_module_class(refuse)
    package = module_class("autograder")
    package.__path__ = []
    checks = module_class("autograder.checks")
    checks.check = make_check(socket_path, peer_module.Peer)
    package.checks = checks
    for module in (package, checks):
        module._sealed = True
        sys.modules[module.__name__] = module

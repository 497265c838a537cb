"""The files of the sandbox's channel, ``peer.py`` and its siblings, named without importing them (they import
torch): the sandbox's layout lists them as files the kernel may read and load.

Standard library only: ``peer.py`` loads this file by path in the kernel, like its other siblings.
"""

from __future__ import annotations

import os

FOLDER = os.path.dirname(os.path.abspath(__file__))
SIBLINGS = ("peer_wire", "peer_proxies", "peer_origins", "peer_tracking", "peer_values")
"""The modules ``peer.py`` loads, in order."""
PEER = os.path.join(FOLDER, "peer.py")
"""The channel's module: the kernel loads it by this path."""
SOURCE_FILES = (PEER, os.path.abspath(__file__), *(os.path.join(FOLDER, f"{name}.py") for name in SIBLINGS))
"""Every file of the channel: the kernel may read them (its tracebacks show their lines)."""

"""The agent's tests follow its rooms (contracts/, serving/, monitoring/, telemetry/,
benchmark/); the agent itself, its CLI and the small utilities are tested here at the top.

Tests in every room import the shared helpers as ``from agent_helpers import ...``. pytest's
default (prepend) import mode already puts this conftest's folder on ``sys.path``; it is put there
explicitly too, so the rooms keep finding agent_helpers.py under another import mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

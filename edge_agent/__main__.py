"""``python -m edge_agent`` is the same program as ``edge-agent``."""

import sys

from edge_agent.cli import main

sys.exit(main())

"""`python -m control COMMAND ...`: the control commands without run.py."""

import sys

from control.cli import main

sys.exit(main())

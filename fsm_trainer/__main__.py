"""``python -m fsm_trainer``: the ``fsm-trainer`` command line."""

import sys

from fsm_trainer.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m bertkit`` (and ``torchrun -m bertkit``): the same as the ``bertkit`` command."""

import sys

from bertkit.cli.app import main

sys.exit(main())

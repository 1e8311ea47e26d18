"""Allow ``python -m lmworks`` and ``python -m lmworks.cli``."""

import sys

from lmworks.cli import main

sys.exit(main())

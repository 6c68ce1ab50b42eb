"""`python -m meshlab.cli …` is the `meshlab` command."""

import sys

from . import main

sys.exit(main())

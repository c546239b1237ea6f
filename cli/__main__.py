"""`python -m cli`: the `mlops` command."""

import sys

from cli.main import main

sys.exit(main())

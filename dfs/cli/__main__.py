"""`python -m dfs.cli ...`: the same as the `dfs` command."""

import sys

from dfs.cli.main import main

sys.exit(main())

"""`python -m budgetlm.cli ...` runs the CLI (as `budgetlm ...` and `python -m budgetlm` do)."""

import sys

from budgetlm.cli import main

sys.exit(main())

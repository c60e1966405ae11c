"""`python -m budgetlm ...` (and `torchrun ... -m budgetlm ...`) runs the CLI."""

import sys

from budgetlm.cli import main

sys.exit(main())

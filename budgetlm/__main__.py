from budgetlm.cli import main

raise SystemExit(main())

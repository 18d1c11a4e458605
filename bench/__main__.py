"""`python -m bench all`: see bench.suite."""

from bench.suite import main

raise SystemExit(main())

"""`python -m bench all`: see bench.suite."""

import sys

if sys.argv[1:2] == ["latency-history"]:  # one command on a long history: bench.history
    from bench.history import main as history_main

    raise SystemExit(history_main(sys.argv[2:]))

from bench.suite import main

raise SystemExit(main())

"""`python -m homeledger.cli`: the same as the `homeledger` command."""

from homeledger.cli.entry import main

main()

"""`python -m homeledger.cli`: the same as the `homeledger` command."""

from homeledger.cli.main import main

main()

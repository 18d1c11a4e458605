"""`python -m homeledger.cli`: the same as the `homeledger` command."""

from homeledger.cli.entry import main

if __name__ == "__main__":  # not when a worker process imports this module again
    main()

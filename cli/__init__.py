"""The `homeledger` command line: parses strings into domain values, calls the application."""

"""The homeledger domain: facts, rules and value types. No I/O, no infrastructure."""

"""The IATI 2.03 export: the mapping from the ledger at a cut (`mapping`), the codes
(`codes`), organisation identifiers (`orgid`), the streaming writer (`writer`) and the
packaged official schema with its offline, streaming validation (`schema`). lxml is
imported by these modules only: import them inside the command that needs them."""

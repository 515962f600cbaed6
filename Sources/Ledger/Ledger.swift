// Ledger: see the module's files.

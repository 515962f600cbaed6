// CellCore: see the module's files.

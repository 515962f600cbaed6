// CellSimulator: see the module's files.

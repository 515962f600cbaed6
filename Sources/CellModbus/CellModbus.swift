// CellModbus: see the module's files.

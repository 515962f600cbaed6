// CellModbus: RA-610 and TS-200 drivers.

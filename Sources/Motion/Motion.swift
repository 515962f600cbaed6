// Motion: see the module's files.

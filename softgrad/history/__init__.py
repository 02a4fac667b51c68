"""What was measured, kept and read back: the run store, the results as pandas frames, the regression
gate, ``choose``, the report, the dashboard's vendored assets, provenance and units.

Reads what check/ and bench/ produced; never times or checks anything itself."""

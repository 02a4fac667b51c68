"""Correctness: the case catalogue, the extended-precision oracle, per-element tolerances, properties,
the checker of one case, and the isolated runner that checks a selection in worker processes.

Uses the registry and the op contract; knows nothing of timing or of the stored history."""

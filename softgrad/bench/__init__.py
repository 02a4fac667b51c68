"""Speed: the benchmark grid, the asv suite generated from the registry, asv's driving and results files,
the plain timer, copy bandwidth, build time, thread and allocator settings, the confirming rerun.

Uses the registry and the checker (for the tracked error); knows nothing of the stored history."""

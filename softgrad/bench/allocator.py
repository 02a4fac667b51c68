"""The allocator settings every timing process runs with (the asv sweep, the roofline probe)."""

#: glibc keeps freed blocks up to 32 MiB in its heap instead of returning them to the OS, so a benchmark's
#: repeated calls reuse memory that is already mapped (as a training loop's would) instead of paying
#: fresh page faults on every call: those made the median of an allocating call swing by a third
#: between two identical runs (torch's native VJP at 4096 x 1024 float32: 2 ms or 11 ms, process to process).
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"

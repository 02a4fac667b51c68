"""The allocator settings every timing process runs with (the sweep's workers, the independent timers, the
roofline probe).

glibc keeps freed blocks in its heap instead of returning them to the OS (``trim_threshold`` 1 TiB: never of
itself; :func:`release_free_memory` trims between shapes) and
never maps a block of its own (``mmap_max`` 0: ``mmap_threshold`` alone cannot rise above 32 MiB), so a
benchmark's repeated calls reuse memory that is already mapped, as a training loop's allocations settle,
instead of paying fresh page faults on every call. Without it the time of a call with a large result
depended on the process's history, not on the code: a block of 32 MiB or more was mapped afresh on every
call unless a free chunk that size happened to be left in the heap. Measured on the 2-core machine:
torch-formula's Jacobian at 256 x 256 float32 (a 64 MiB result) paid 16385 page faults a call in a fresh
process and none with these settings, and read 3.9 ms in a long-lived sweep worker against 21 ms in a fresh
process; with a 32 MiB threshold alone, torch's native VJP at 4096 x 1024 float32 had read 2 ms or 11 ms,
process to process. The trim threshold had been 1 GiB: a result of 1 GiB or more (float64 at 131072 x 1024,
the roofline's attention rows) was handed back to the OS when freed and faulted in again on the next call, 991
faults and 300 ms a call to fill 1 GiB against 93 ms with nothing trimmed (the run's processes then spent 4.7 of
their 5.7 minutes in system time). What a first call costs (mapping its memory) is the first-call figure's, not the
warm time's.
"""

MALLOC_TUNABLES = ("glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1099511627776:"
                   "glibc.malloc.mmap_max=0")


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the OS (glibc's ``malloc_trim``): with ``mmap_max`` 0 a worker
    that timed a large shape keeps its memory mapped after it, and the next shape's arrays land beside it.
    The sweep calls it between shapes only, never between the calls it times. False where glibc is absent."""
    import ctypes

    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False

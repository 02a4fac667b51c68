"""Numba, fused for rows past the cache (``numba-fused``): one sweep per row from memory, one from cache.

Softmax and VJP read each row from memory once, block by block (:data:`BLOCK` elements, swept twice
while in L1): the block's max raises the row's running max ``m``, then ``e = exp(x - m)`` is stored in
the output and summed (the VJP also sums ``g * e``), the sums so far rescaled when ``m`` rose (the online
normaliser, once per block). A second sweep, while the row is still in this core's cache, scales each
block by ``exp(m_block - m_row) / sum`` (the VJP: times ``g - dot / sum``). exp is computed once per
element and the output is written once to memory. A block's max is found one block ahead, in the loop of
the block before's exp (a row's first block's in the loop of the previous row's last; a short row's one row
ahead), so its loads from memory overlap that loop's arithmetic instead of waiting with the arithmetic idle
(the first block's max across rows: rows of 4096 and 8192 0.84-0.97x the time). The VJP's g is left to the
hardware's prefetchers: a software prefetch of the next row's (block's) g before its loop of sums, landed on
2026-12-06 with the maxima ahead, cost time on the AMD host (2026-12-07, one process, interleaved medians, against
the same kernels without it: rows of 512 to 2048 and vocab rows, float32, bfloat16 and float64, 0.81-1.00x the
time without it; 0.96-0.97x in cache). Tried there the same day and not kept, against these kernels: x prefetched
three or eight rows ahead, 1.03-1.41x the time at 131072x1024 and 32768x512; the next row's output lines prefetched
for writing (``prefetchw``), 1.06-1.51x at 131072x1024 (1.01-1.15x in cache); the next row's g copied into a
buffer of the worker's own in the loop of this row's exp (its loads from memory overlapping the arithmetic),
0.97-1.21x from memory, 1.07-1.27x in cache; on 2026-12-08, the next row's g loaded in the loop of this row's exp
and OR-ed into a value kept by an empty ``asm`` (a load and an OR a vector, no store), rows of 512 and 1024:
float32 and bfloat16 VJP 1.20-1.56x the time from memory, 1.23-1.39x in cache (softmax unchanged, same bits).
Measured (2026-12-06, the quiet 2-core machine, the kernels before and after in one process, two threads, medians
of 9): rows of 1024 (131072x1024) softmax float32 0.85x the time before, bfloat16 0.73x, VJP float32 0.82x,
bfloat16 0.87x; 256x1024 in cache 0.82-0.89x; vocab rows (512x262144, 2048x50257) bfloat16 softmax 0.89-0.91x,
the rest 0.96-0.99x (a block's sums are taken after its exp loop: summed in the exp's loop, a Numba loop that LLVM
vectorised under ``reassoc``, their order followed the compile, a row through two kernels 1-2 ulp apart after some
cold compiles; there the bfloat16 softmax and VJP had been 0.84-0.85x; tried again on 2026-12-07 with no runtime
alias check left (:func:`_no_alias`): 0.88-0.98x the time in cache, 0.77-1.08x from memory, but a kernel read from
the cache gave other bits than the same kernel compiled afresh; not kept).

Every sum is taken in an order built into its LLVM IR (:func:`_lane_sums`: lanes, then a tree) and nothing
here is compiled with a fast-math flag that lets LLVM reorder arithmetic (:data:`FASTMATH`), so a row gives
the same bits alone or among others, wherever it lies, whether its kernel was compiled afresh or read from the
cache, and on CPUs of other vector widths (same instruction set for the multiply-adds). Numba links each row
function into its caller's module and optimises it again there; while the sums were Numba loops vectorised
under ``reassoc``, the copy a call reached set their order, and the float32 VJP of a row came out an ulp
apart between a kernel read from the cache and one compiled afresh
(``test_same_row_same_bits_whether_compiled_afresh_or_read_from_the_cache``). Cost (2026-12-07, AMD host, one
process, interleaved, against the loops): 0.95-1.07x the time at 256x64 to 32768x1024, float32 and float64,
softmax and VJP; 1.00-1.07x at 1x16 to 256x4096 (a first version that ran the masked tail for a row of whole
vectors too had taken 1.10-1.29x at rows of 1024 from memory).
Rows are dealt to the threads in contiguous runs; with
fewer rows than threads a long row is split into chunks, each swept and scaled by one thread, the chunks'
maxima and sums merged between the two sweeps. Inputs under :data:`SERIAL_BELOW` elements
(:data:`SERIAL_BELOW_FLOAT64` in float64), each row counted as :data:`ROW_WEIGHT` elements more, run serially.
The Jacobian computes a row's s the same way into a row of the worker's own, then writes the row's n x n
block once, block row i as ``-s_i s_j`` with ``s_i - s_i^2`` on the diagonal; with fewer rows than threads
each block is cut into bands of block rows.

Rows of up to one block (:data:`ROW_ELEMENTS`, 2048 elements) take a path of their own
(:func:`_rows`): one call for a worker's whole run of rows, loops indexed by unsigned offsets (no slices,
whose NRT reference counts cost 40-60 ns a row; a signed index is wrapped around when negative, and LLVM
then gathers or stays scalar), the max, the exp, the row's sums (:func:`_lane_sums`), then the scaling. A
float32 or float64 input too small for threads,
2-d and C-contiguous, goes from the op straight to a kernel with a 2-d signature (:func:`_small_rows`).
Rows shorter than a vector (:data:`SHORT_ROWS`) put the rows, not a row's elements, in the vector lanes
(:func:`_short_rows`): each had been a scalar loop of exps with a row's fixed costs around it. Measured
(2026-12-07, AMD host, one process, interleaved, against the row path): float32 and bfloat16 rows of 2 to 7
0.42-0.76x the time (4096 x 4 float32 0.32-0.46x, with :data:`ROW_WEIGHT` sending it to threads), float64 rows
of 2 and 3 0.55-0.57x (of 4 to 7: 0.86-1.12x, so they keep the row path); a single row 1.00-1.11x.

float16 and bfloat16 are handled as their uint16 bits (Numba has no float16 on the CPU, and no bfloat16):
widened to float32 as they are read (bfloat16: a 16-bit shift; float16: the CPU's conversion where it has
one, :func:`hardware_half`, else its exponent and fraction shifted and scaled by 2**112, which normalises
subnormals, infinities and NaN set apart), everything computed in float32, and rounded to nearest even
once, as the result is written (NaN stays NaN; float16 overflows to inf past 65520 and rounds into its
subnormals). Their exp values wait in a float32 row of the worker's own.

``exp`` is written out so that LLVM vectorises it (Numba has no vector ``exp`` without Intel's SVML:
installing ``intel-cmplr-lib-rt`` loads libsvml, but ``python -m numba -s`` still reports SVML not
operational, since PyPI's llvmlite is not SVML-patched): after the max shift every argument is <= 0;
``k = round(t / ln 2)`` by the magic-number trick (adding 1.5 * 2**mantissa rounds to an integer),
``r = t - k ln 2`` in two steps, a near-minimax polynomial for ``exp(r)`` on ``|r| <= ln2 / 2`` (degree 6 in
float32, 11 in float64, 4 for the 16-bit formats, whose results are rounded once to 16 bits: :data:`EXP_DEGREE`)
and ``2**k`` from exponent bits. Results below the smallest normal number are rounded to subnormals once (the
coefficients carry a factor ``2**-lift``, so ``2**(k + lift)`` is always normal and one product rounds), as libm
does: a VJP entry ``s_i (g_i - dot)`` with a flushed ``s_i`` can be off by more than the smallest normal. Below
half the smallest subnormal (and at ``-inf``) exp is exactly 0; NaN gives NaN. Every float32 argument in
[-110, 0] (all 1.1e9 of them, against float64's exp): worst error 0.76 eps, 0.93 * 2**-23 of the smallest normal
below it (the Taylor polynomial of degree 7 and 2**k as two normal halves, 7 more operations a lane: 0.66 and
0.85). Measured against that exp (the kernels before and after in one process, 2026-12-06, quiet machine, two
threads): 131072x1024 softmax float32 0.84-0.89x the time, bfloat16 0.83-0.85x, float64 0.91x; VJP 0.87-1.00x;
vocab rows 0.79-0.96x. A block's sums are accumulated in
the compute dtype (:data:`SUM_LANES` lanes of at most BLOCK / lanes terms each), a row's in float64. What
limits it (issue 24,
measured on the shared 2-core machine, one thread, thread CPU time): the arithmetic. LLVM prefers 256-bit
vectors on Intel's AVX-512 cores; every kernel here is marked ``prefer-vector-width=512``
(:func:`_wide_vectors`), so its loops run 16 float32 lanes wide. Before the mark (8 lanes) a float32 softmax
cost 0.81 ns per element with its rows in cache and 1.08 from memory, where a copy costs 0.68 (torch.softmax,
AVX-512: 0.65 and 1.17), bfloat16 1.05 in cache against a 0.37 copy; with it, float32 0.63 and bfloat16 0.69 in cache
(torch.softmax 0.72 and 0.80 in the same process). With two threads the memory allows 0.65 ns per float32
element per thread at 24.5 GB/s (85% of copy), so the in-cache cost is at that line. Past the cache, side by
side on the quiet machine (2026-12-06 16:53, copy 21.4-25.1 GB/s beside each): float32 softmax 74-75% of copy
(before: 44-62%), VJP 64-84%, bfloat16 softmax 37-39%, VJP 42-51%; at 23:13, with the near-minimax exp and the
maxima ahead across rows (docs/timing.md#roofline): vocab rows float32 72-82% / 67-80%, bfloat16 49% / 50-54%,
rows of 1024 (131072x1024) float32 92% / 79%, bfloat16 52% / 57%, float64 82% / 84% (with the timing
allocator's trim threshold raised: at 1 GiB a result had been faulted in afresh every call, 37% / 54%); at
01:38 on 12-07 (docs/timing.md#roofline) vocab rows float32 70-82% / 68-82%, 16-bit 47-57%, float64 61-71%.
Rows longer than a block lose to their scaling pass from cache: without it (a wrong result, the same memory
traffic) 0.68-0.87x the time; that pass done block by block inside the next row's sweep, or with the next row
prefetched during it, did not win it back (0.92-1.22x; not kept). In 16 bits it does: there a row's sweep is
arithmetic on few bytes (2 an element read) and its scaling few operations on a store stream, and one after the
other within a thread they do not overlap (2 threads, 2026-12-07: 0.18 ns an element in cache, 0.13 for the bytes
at the copy's rate, 0.24-0.32 measured from memory). Each row's exp values now wait in one of two float32 rows of
the worker's own while the next row is swept, and block j of the row behind is scaled into the output in the
loops of block j's exp (:data:`BEHIND_BYTES`). Same bits; one process, interleaved medians, against sweep-then-scale
(AMD host): bfloat16 and float16 softmax 0.71-0.90x the time at 2048x32000, 2048x50257, 1024x128256, 1024x131072,
1024x151936, 16384x16384 and 65536x4096 (0.79-0.99x at 512x262144), the VJP 0.77-0.92x (at 65536x4096 and
16384x16384 one run of three read 0.96-1.07x; at 512x262144, past the limit, 1.09-1.16x). In float32 and float64,
with two rows of the worker's own and the output written once by the scaling: 0.81-1.42x, mostly slower (the
float64 VJP at 512x262144 0.81x, its softmax 0.98x; not kept). Also tried for rows of one block and not kept: the
VJP's ``g * e`` kept in a row of the worker's own in the exp's loop (g read from memory in that loop instead of in the
loop of sums), its sum taken from that row: 1.00-1.20x the time at 131072x1024 and 262144x512 in float32,
bfloat16 and float16, 1.07-1.09x in cache; and 16-bit rows of one block scaled one row behind as the longer ones
are (in the loops of the next row's exp, its sums left where they were): 0.80-1.22x from memory at 131072x1024,
262144x512 and 65536x2048, 1.05-1.16x in cache (256x256, 256x1024).
The 16-bit VJP's long rows go in groups instead, where a worker has more rows than fill :data:`GROUP_BYTES` with
their float32 exp values (:func:`group_rows`): it sweeps a group's rows, then scales them, the group's exp values
past its L2 by then; its sweeps only read memory and its scalings write it, in phases of megabytes, where the row
behind mixes the two streams in one loop. Its time from memory had grown as rows shortened: bfloat16 VJP, two
threads, 0.30 ns an element at rows of 16384 against 0.20 at 262144, and with each row swept then scaled (no row
behind) 0.33 at 16384, 0.31 at 131072, 0.25 at 163840, 0.22 at 196608, 0.20 at 262144, as the row's float32
exp values outgrew the L2. Against the row behind (2026-12-07, AMD host, one process, interleaved medians, same
bits): bfloat16 and float16 VJP 0.71-0.81x the time at 2048x50257, 16384x16384 and 65536x4096, 0.85-0.94x at
1024x128256 and 32768x2049, 0.97-0.98x at 512x262144 (past the row behind's limit, a group of 2 rows against 1);
in cache a worker's rows fit one group and keep the row behind (64x4096, 16x16384: 1.01x). Groups of 1 or 4 MiB
read the same as 2 to within 0.03x. Tried and not kept: groups for the 16-bit softmax (bfloat16 0.82-0.99x, but
float16 0.91-1.12x from memory and 1.11-1.14x in cache), for 16-bit rows of one block (0.70-1.23x from memory,
1.07-1.16x in cache) and in float32 and float64, whose sweep writes the output itself (1.00-1.18x).
Non-temporal stores (tried 2026-12-07 on the AMD host, not kept): an intrinsic copying whole 64-byte lines with
LLVM stores marked ``!nontemporal`` (``vmovntps`` on zmm, checked in the assembly, then ``sfence``), each row or
block finished in a row of the worker's own and streamed into the output, for outputs past the last-level
cache. Same bits. A bare streaming kernel (y = 1.5 x + 0.5, 512 MiB, two threads) took 0.78-0.80x the time
with them, 0.87x with a second input read; in these kernels, 131072 x 1024 float32 softmax 0.78-0.87x (leaving
the output unwritten altogether: 0.76x), but the float32 VJP 1.07-1.21x, bfloat16 1.05-1.22x, float64 VJP
1.29x and rows longer than a block 1.05-1.65x (there the worker's own row alone cost 1.07-1.13x against
finishing the rows in the output).

In-cache shapes and call overhead (issue 24 item 4; the same machine with other processes running; one
thread, thread CPU time, the previous kernels and these in one process). 256 rows, float32 softmax, ns a
row, before -> after: n = 2: 75 -> 25; 16: 100 -> 22-38; 64: 265 -> 72-81; 256: 314 -> 183; 512: 576 ->
368; 1024: 719 -> 708 (at 2048 the row path took 1.14x the blocks'); the VJP alike; float64 16: 91 -> 38,
512: 909 -> 861 (at 1024 the row path took 1.28x then, hence 4 KiB until the next row's max moved into the
loop of this one's exp: :data:`ROW_ELEMENTS`). The row sums in float32 instead of float64:
5-10% less (not kept). A 1x16 softmax call took 4.2 us, of which 0.7 in Numba's dispatch and the kernel
and the rest in the Python wrapper; now 1.2-1.9 us in two runs (torch.softmax 1.3-1.6 in the same
processes). Dispatch alone: eight arguments (the flat kernel) 0.85 us, two 2-d arrays 0.62, the compiled
overload's ``entry_point`` 0.42; that is not used: it checks no argument's type (an array of another dtype
or layout is read as garbage), and the checks would cost what it saves. With the 512-bit mark, on the quiet
machine at two threads (2026-12-06, ``benchmarks/roofline.py`` at batch 1 and 256, n = 2 to 4096, float32
and float64, against numba-parallel, torch-native, torch-func, torch-autograd, torch-compile, jax-jit and
numpy): the fastest or within its spread at every point but float64 softmax at 256 x 256 (1.19x
torch-native's time; float32 there read 1.22x and then 1.07x in two runs), within 1.5x at n <= 64 (1.22x
at most). Rows of 16 to 64 elements with a ragged tail had run it scalar (1024 x 63 float32 1.8x
torch.softmax's CPU time, 1024 x 64 0.7x): the exp of a ragged row's last elements now runs as one vector that
overlaps the one before (:data:`_OVERLAP_TAIL`; same bits; 2026-12-07, one process, interleaved, against the
scalar rest: float32 1024x63 0.61-0.74x the time, 1024x50 0.86-0.87x, 256x77 0.83-0.86x, 256x197 0.92x,
256x1000 0.97x, bfloat16 0.75-1.03x; float64 kept its scalar rest: its VJP took 1.13-1.26x at rows of 50 and
64). Two threads lose to one below 32768 elements (256 x 64: 16.4
against 12.2 us), so :data:`SERIAL_BELOW` stays; float64 from 8192 elements gains (256 x 64: 22.3 -> 17.2
us), hence :data:`SERIAL_BELOW_FLOAT64`.

Threads under load: with the machine loaded, every parallel kernel of Numba's omp threading layer (this
entry's, numba-parallel's and a bare ``prange(2)``) took 4 to 8 ms a call (median 8.0 ms, in 4 ms steps,
the scheduler's tick) where it takes 3-8 us otherwise, and torch's entries 8-16 ms at the same points; in
the same minutes the bare ``prange(2)`` took 5-8 us with ``OMP_WAIT_POLICY=passive`` and 30-50 us with the
workqueue layer. GNU OpenMP's default wait spins, holding a core while the thread with the other half of
the work waits for one. softgrad's check workers set passive; its timing processes do not (a choice for the
harness, which this entry cannot make: the policy is read once per process, for every family in it).

Inputs are read where they lie: a row-padded buffer (rows of a wider array) or a cotangent broadcast
along rows (row stride 0) is passed as a flat view with a row stride; only a layout with a non-unit
stride along the row, or leading dims that do not flatten to one row stride, is copied first. Where they lie
matters: a vector load or store 16 bytes off a cache line spans two lines, and NumPy places arrays on 16 bytes
(float32 at 512x262144, inputs and result aligned or 16 bytes off: softmax 28-42 ms against 41-57, the VJP 51-54
against 64-89; :mod:`softgrad.aligned`). Results from :data:`ALIGNED_FROM` bytes start on a line; inputs are not
copied to one (torch's and JAX's arrays already start on one). Results from :data:`APART_FROM` bytes also
start 128 KiB or more, modulo 256 MiB, from x's and g's first elements (:func:`softgrad.aligned.empty_apart`):
on the AMD host a stream stored at a multiple of 256 MiB from one loaded evicts it from the L1, and arrays of a
multiple of 256 MiB made one after another lie just that far apart. Measured (2026-12-08, one process, single
calls interleaved, x, g and the result in one buffer, the result placed on an input modulo 2**28 or 128 KiB from
it): float32 131072x1024 softmax 0.47-0.77x the time apart (the result 4 KiB past x, then on x), VJP 0.82x (on
g), bfloat16 VJP 0.76x; 512x262144 float32 softmax 0.87x, VJP 0.82x; bfloat16 262144x1024 softmax 0.79x, float64
65536x1024 0.85x; with the result 4 KiB past g the VJP read 0.99x (that placement met only the next row's g), and
bfloat16 512x262144 softmax 1.01x.
A row whose length is not a multiple of a line starts off one whatever the base (2048x50257: 0.95-1.03x with the
result aligned); peeling each row's first elements to align the rest is not done: rows of 50257 against 50256 and
50272 (2026-12-08, 2048 rows, one process, interleaved) took 1.01x the time in bfloat16 softmax, 1.02x in float32,
1.01x in cache (16 rows).
Non-finite policy as softgrad's: a NaN or ``+inf`` in a row, or a row of only ``-inf``, gives a NaN row.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import types

import numpy as np

import softgrad
from softgrad import aligned

#: fastmath flags of every kernel function: multiply-adds may fuse (``contract``), nothing else. ``reassoc`` would
#: let LLVM choose the order of additions per compile (a row's bits then followed which copy of a row function a
#: kernel linked, :func:`_lane_sums`); ``nnan``/``ninf`` would drop a mask's ``-inf``. Without ``reassoc``,
#: ``arcp`` and ``nsz`` (2026-12-07): 0.98-1.02x the time
FASTMATH = {"contract"}
#: elements per block of the online first sweep (the block is swept twice while it is in L1)
BLOCK = 2048
#: rows of up to this many elements (one block) run in :func:`_rows`, the next row's max in the loop of this one's
#: exp; longer ones in blocks (:func:`_sweep`, :func:`_scale`), the next block's max in the loop of this one's.
#: Rows of one block had run in blocks from 1024 float32 or 512 float64 elements up, where a row's first block
#: waits for its max with the arithmetic idle (2026-12-06, two threads, ns an element a thread, blocks -> rows:
#: float32 128x2048 0.79 -> 0.53, 65536x2048 0.93 -> 0.85; float64 256x1024 1.69 -> 1.21, 131072x1024
#: 2.01 -> 1.62, 64x2048 2.09 -> 1.16; rows of 4096 float32 were slower as rows, 0.50 -> 0.65)
ROW_ELEMENTS = BLOCK
#: the shortest chunk a row is split into for threads (shorter rows run whole on one thread)
MIN_CHUNK = 16384
#: 16-bit rows longer than a block are scaled one row behind, inside the next row's sweep (the VJP's where a worker's
#: rows fit one group, :data:`GROUP_BYTES`), while the rows a worker keeps in its cache for it take at most this many
#: bytes: two float32 rows of exp values (8 bytes an element), and for the VJP two rows of 16-bit g (4 more). Past
#: it the old order (sweep, then scale) was faster (2026-12-07, AMD host, 1 MiB L2 a core, 32 MiB L3: bfloat16 and
#: float16 softmax at 512x262144, 2 MiB: 0.79-0.99x the time; the VJP at 512x262144, 3 MiB: 1.09-1.16x; at
#: 1024x151936, 1.8 MiB: 0.83-0.90x)
BEHIND_BYTES = 2 << 20
#: the 16-bit VJP's long rows are swept this many bytes of float32 exp values at a time (:func:`group_rows` rows)
#: before they are scaled, where a worker has more rows than that (else they keep the row behind). Measured on the
#: AMD host (1 MiB L2 a core): 1 and 4 MiB within 0.03x of 2 at 2048x50257, 6144x16384 and 512x262144
GROUP_BYTES = 2 << 20
#: results of this many bytes or more start on a cache line (:mod:`softgrad.aligned`: NumPy's own start 16 bytes
#: past one, or anywhere on 16 bytes, and then every vector store spans two lines); below it ``np.empty`` (2 us less)
ALIGNED_FROM = 1 << 20
#: results of this many bytes or more also start apart from the inputs modulo 256 MiB
#: (:func:`softgrad.aligned.empty_apart`, 5 us more than a plain aligned result). Measured with the result on x
#: against apart (2026-12-08, float32 VJP, rows of 1024, one process, interleaved): 1 MiB 1.01-1.03x the time apart
#: (in cache, where the L1's misses are the L2's hits), 8 MiB 0.98x (0.88-1.15), 16 MiB 0.86x, 32 MiB 0.79x,
#: 64 MiB 0.86x (softmax with the result 4 KiB past x: 0.53x)
APART_FROM = 8 << 20
#: inputs of fewer elements run serially: starting the threads would cost more than it saves (torch's grain too).
#: At 256 x 64 float32 (16384) one thread takes 18-20 us and a fork-join of the omp layer 3 us at best (a
#: core free), so two threads save at most 7 us; loaded, they cost 5-65 us more (and 8 ms where OpenMP spins)
SERIAL_BELOW = 32768
#: a row counts as this many elements more against the serial limits: a short row's own work (its max, its
#: sums, its scaling) costs more than its elements (rows of 4 float32: 16 ns a row on one thread, 4096 x 4 took
#: 67 us serially where two threads of numba-parallel took 38)
ROW_WEIGHT = 16
#: the same for float64, whose elements cost about twice as much (a longer exp polynomial, half the lanes): at
#: 256 x 64 (16384) one thread took 22.3 us and two 17.2, at 256 x 32 12.8 and 11.9 (quiet machine, 2026-12-06)
SERIAL_BELOW_FLOAT64 = 8192

_LOG2E = 1.4426950408889634
#: exp's polynomials on |r| <= ln2 / 2, by degree, lowest degree first: near-minimax fits (absolute error
#: 2.8e-6, 1.9e-9, 3.2e-18), ``mpmath.chebyfit(mpmath.exp, [-h, h], degree + 1)`` with 40 digits and h = ln2 / 2
#: widened by 1e-4. Taylor polynomials of degree 7 and 13 had been needed for the same accuracy
_EXP_POLYNOMIALS = {
    4: ("0x1.0000000000000p+0", "0x1.fffb0e4fb5eaap-1", "0x1.fffe5a7b06cc8p-2", "0x1.57e7529ea13bap-3",
        "0x1.570badea72b3ep-5"),
    6: ("0x1.0000000000000p+0", "0x1.000000a21653fp+0", "0x1.000000287f871p-1", "0x1.5554041b96acbp-3",
        "0x1.5554accfdb593p-5", "0x1.126fb8fa71fe6p-7", "0x1.6d7543e4127b8p-10"),
    11: ("0x1.0000000000000p+0", "0x1.0000000000000p+0", "0x1.0000000000011p-1", "0x1.555555555555ap-3",
         "0x1.555555554f0bap-5", "0x1.111111110f21ep-7", "0x1.6c16c1880029fp-10", "0x1.a01a01b1461c5p-13",
         "0x1.a01991a10d9aep-16", "0x1.71ddf56d8deb5p-19", "0x1.28b4101c77212p-22", "0x1.af632a0f7e2cep-26"),
}
#: the polynomial's degree per softgrad dtype: the 16-bit ones compute in float32 but round once to 16 bits, where
#: degree 4's error is under 1/100 of float16's spacing (float32's own needs degree 6)
EXP_DEGREE = {"float64": 11, "float32": 6, "float16": 4, "bfloat16": 4}


def _spec(dtype: str, degree: int) -> dict:
    """exp's constants for one compute dtype and polynomial degree, as typed scalars (Numba types a Python float
    global as float64)."""
    f, i = (np.float32, np.int32) if dtype == "float32" else (np.float64, np.int64)
    mantissa, lift = (23, 32) if dtype == "float32" else (52, 64)
    ln2_hi, ln2_lo = (0.693359375, -2.12194440e-4) if dtype == "float32" else (
        6.93147180369123816490e-01, 1.90821492927058770002e-10)  # k * ln2_hi is exact for the k that occur
    # the coefficients times 2**-lift (exact): the polynomial carries the factor 2**-lift, so that 2**(k + lift),
    # built from exponent bits, is a normal number for every k that occurs (-150..0 in float32, -1075..0 in
    # float64), and one product gives 2**k p rounded once (into the subnormals, where exp(t) is one)
    coefs = [f(math.ldexp(float.fromhex(c), -lift)) for c in reversed(_EXP_POLYNOMIALS[degree])]
    # from `low` down exp rounds to 0 (exp(low) is under half the smallest subnormal: float32 2**-150, float64
    # 2**-1075), so t is raised to it: -inf included, with no select after the polynomial
    return dict(_magic=f(1.5 * 2.0**mantissa), _log2e=f(_LOG2E), _ln2_hi=f(ln2_hi), _ln2_lo=f(ln2_lo),
                _low=f(-104.0 if dtype == "float32" else -745.2), _unit=f(2.0**mantissa),
                _lifted_bias=f((lift + (127 if dtype == "float32" else 1023)) * 2.0**mantissa),
                _top=coefs[0], _rest=tuple(coefs[1:]), _ftype=f, _itype=i)


def _exp_template(t):  # pragma: no cover - compiled by numba, with the constants of one dtype as globals
    """exp(t) for t <= 0, -inf or NaN, branch-free (a max and no select), in t's dtype."""
    t = _low if t < _low else t  # NaN stays NaN (the comparison is false)
    k = (t * _log2e + _magic) - _magic  # t / ln2 rounded to an integer (adding 1.5 * 2**mantissa rounds)
    r = t - k * _ln2_hi
    r = r - k * _ln2_lo
    p = _top
    for c in _rest:  # Horner over a constant tuple (LLVM unrolls it)
        p = p * r + c
    # 2**(k + lift) from its exponent bits by one float-to-int conversion (k * 2**mantissa plus the lifted bias,
    # exact): no integer arithmetic, which Numba widens to int64 and which then halves the vector width. p
    # carries 2**-lift; the product rounds once. NaN: p is NaN
    return p * _itype(k * _unit + _lifted_bias).view(_ftype)


@functools.lru_cache(maxsize=None)
def _build_exp(dtype: str, degree: int):
    """The compiled exp of compute ``dtype`` (float32 or float64) with a polynomial of ``degree``."""
    import numba

    name = f"_exp_{dtype}_{degree}"  # one name per globals: Numba's on-disk cache knows a function by its name
    fn = types.FunctionType(_exp_template.__code__, {**_exp_template.__globals__, **_spec(dtype, degree)}, name)
    fn.__qualname__ = fn.__name__
    return numba.njit(fastmath={"contract"}, cache=True)(fn)


# 16-bit formats, as uint16 bits in Numba (which has no float16 on the CPU and no bfloat16 at all), widened
# to float32 as they are read and rounded to nearest even as they are written; every op on uint32 is cast
# back to uint32 (Numba widens integer arithmetic to 64 bits, which halves the vector width)
_U32, _F32, _U64 = np.uint32, np.float32, np.uint64
_F16_SCALE = np.float32(2.0**112)  # float32 exponent bias minus float16's, as a factor
_F16_SUBNORMAL = np.float32(0.5)  # adding it puts a float16 subnormal's 10 bits at the bottom of the float32
_F16_SUBNORMAL_BITS = _U32(0x3F000000)


def _same(v):  # pragma: no cover - compiled by numba
    """Loads and stores of float32 and float64: the value itself."""
    return v


def _bf16_widen(h):  # pragma: no cover - compiled by numba
    """bfloat16 bits -> float32: the top half of its bits (exact, NaN and infinities included)."""
    return _U32(_U32(h) << 16).view(_F32)


def _bf16_narrow(v):  # pragma: no cover - compiled by numba
    """float32 -> bfloat16 bits, rounded to nearest even on the bits (overflow to inf). A NaN stays the same NaN
    when its low 16 bits are 0, as every NaN the kernels compute: float32 arithmetic passes on an input NaN's
    payload (quieted), which sits in the top half of a widened bfloat16, or makes the default NaN (0xFFC00000 on
    x86, 0x7FC00000 on Arm). A float32 NaN with low bits set would round like a number (to inf or to a zero);
    the test feeds every bfloat16 NaN through the kernels. Without the NaN check the kernels' 16-bit loops have
    three operations fewer an element (2026-12-07, AMD host, one process, interleaved, against the check:
    bfloat16 softmax and VJP 0.91-0.96x the time at rows of 1024 in cache, 0.92 / 0.96x at 131072x1024 (a noisier
    first run: 0.91 / 1.29x), 0.95-0.97x at 512x262144)."""
    b = _F32(v).view(_U32)
    return np.uint16(_U32(_U32(b + _U32(0x7FFF) + _U32(_U32(b >> 16) & 1)) >> 16))


def _f16_widen(h):  # pragma: no cover - compiled by numba
    """float16 bits -> float32, exact: exponent and fraction shifted into place and scaled by 2**112 (which
    normalises subnormals too), infinities and NaN given the all-ones exponent, then the sign."""
    magnitude = _U32(_U32(h) & 0x7FFF)
    shifted = _U32(magnitude << 13)
    finite = _F32(shifted.view(_F32) * _F16_SCALE).view(_U32)
    bits = _U32(shifted | 0x7F800000) if magnitude >= _U32(0x7C00) else finite
    return _U32(_U32(_U32(_U32(h) & 0x8000) << 16) | bits).view(_F32)


def _f16_narrow(v):  # pragma: no cover - compiled by numba
    """float32 -> float16 bits, rounded to nearest even (F. Giesen's float_to_half_fast3_rtne): past 65520
    inf (NaN stays NaN), below 2**-14 a float32 add puts the subnormal's bits at the bottom (the add rounds),
    else the exponent is rebiased and the dropped 13 bits rounded by an integer add."""
    b = _F32(v).view(_U32)
    sign = _U32(b & _U32(0x80000000))
    a = _U32(b ^ sign)
    special = _U32(0x7E00) if a > _U32(0x7F800000) else _U32(0x7C00)
    sub = _U32(_F32(_U32(a).view(_F32) + _F16_SUBNORMAL).view(_U32) - _F16_SUBNORMAL_BITS)
    normal = _U32(_U32(a + _U32(0xC8000FFF) + _U32(_U32(a >> 13) & 1)) >> 13)  # (15 - 127) << 23, + 0xfff
    bits = special if a >= _U32(0x47800000) else (sub if a < _U32(0x38800000) else normal)
    return np.uint16(bits | _U32(sign >> 16))


def _f16_widen_hardware(h):  # pragma: no cover - compiled by numba
    """float16 bits -> float32 by the CPU's conversion (x86's ``vcvtph2ps``): exact, NaN kept NaN (quieted)."""
    return _half_to_float(h)


def _f16_narrow_hardware(v):  # pragma: no cover - compiled by numba
    """float32 -> float16 bits by the CPU's conversion (x86's ``vcvtps2ph``): rounded to nearest even, into the
    subnormals and to inf past 65520, as :func:`_f16_narrow`; NaN stays NaN (quiet)."""
    return _float_to_half(_F32(v))


_half_to_float = _float_to_half = None  # the intrinsics, given to the two functions above (see _half_conversions)


def hardware_half() -> bool:
    """Whether the CPU Numba compiles for converts float32 <-> float16 itself: x86 with F16C (from 2012's Ivy
    Bridge; Numba's ``NUMBA_CPU_FEATURES`` respected), every AArch64. Elsewhere LLVM would lower the conversion to
    a library call that Numba's JIT need not resolve, so the kernels keep :func:`_f16_widen` and :func:`_f16_narrow`.
    Measured (2026-12-07, the quiet 2-core AVX-512 machine, two threads, both kernels in one process, medians of
    7-9, interleaved; the same bits): float16 131072x1024 softmax 0.75-0.77x the time of the bit arithmetic, VJP
    0.67-0.68x; vocab rows (512x262144, 2048x50257) softmax 0.80-0.93x, VJP 0.73-0.78x; 256x1024 0.62-0.64x."""
    import platform

    from numba.core import codegen, config

    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    # the features Numba's JIT compiles for (its own choice: NUMBA_CPU_FEATURES, else the host's; '' where LLVM
    # cannot tell, and then the bit arithmetic)
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    return "+f16c" in features.split(",")


@functools.lru_cache(maxsize=None)
def _half_conversions() -> dict:
    """Numba intrinsics ``_half_to_float(uint16) -> float32`` and ``_float_to_half(float32) -> uint16``: LLVM's
    ``fpext`` / ``fptrunc`` of its ``half`` type (which LLVM vectorises: ``vcvtph2ps`` / ``vcvtps2ph`` on x86).
    No bfloat16 counterpart: x86's ``vcvtneps2bf16`` flushes subnormal inputs and results to zero."""
    from llvmlite import ir
    from numba.core import types as nb_types
    from numba.extending import intrinsic

    @intrinsic
    def half_to_float(typingctx, h):
        def codegen(context, builder, signature, args):
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

        return nb_types.float32(nb_types.uint16), codegen

    @intrinsic
    def float_to_half(typingctx, v):
        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

        return nb_types.uint16(nb_types.float32), codegen

    return {"_half_to_float": half_to_float, "_float_to_half": float_to_half}


#: per dtype: (the dtype computed in, widening load, rounding store), the 16-bit ones stored as uint16
_CONVERSIONS = {"float64": ("float64", _same, _same), "float32": ("float32", _same, _same),
                "float16": ("float32", _f16_widen, _f16_narrow), "bfloat16": ("float32", _bf16_widen, _bf16_narrow)}


def _conversions(dtype: str) -> tuple:
    """(the dtype computed in, widening load, rounding store, the globals they need) for ``dtype``: float16's by
    the CPU where :func:`hardware_half`, else :data:`_CONVERSIONS`."""
    if dtype == "float16" and hardware_half():
        return "float32", _f16_widen_hardware, _f16_narrow_hardware, _half_conversions()
    return (*_CONVERSIONS[dtype], {})



def _order_key(b):  # pragma: no cover - compiled by numba
    """A float's bits (as a signed integer of its width) -> an integer that orders as the float does (negative
    floats' magnitude bits flipped); its own inverse."""
    return _KEY_T(b ^ _KEY_T(_KEY_T(b >> _KEY_SHIFT) & _KEY_MASK))


def _block_max(x):  # pragma: no cover - compiled by numba
    """max of x (not empty), in the compute dtype, found on the bits: an integer max LLVM vectorises (a float
    max it leaves scalar, ``vmaxss``, even with ``nnan``: 0.3 ns per float32 element in L1 against 0.1
    measured). -inf is the least key, +inf the greatest finite; a NaN with its sign bit clear is the greatest
    (a NaN max: the row's sums turn NaN), one with it set the least (skipped: it still turns the row's sums
    to NaN)."""
    _wide()
    bits = x.view(_KEY_T)
    m = _order_key(bits[0])
    for i in range(bits.size):
        k = _order_key(bits[i])
        m = k if k > m else m
    return _load(_KEY_T(_order_key(m)).view(_STORE_T))


def _first_max(x, xo, lo, hi):  # pragma: no cover - compiled by numba
    """The max of the first block of elements [lo, hi) of the row at x[xo] (-inf where there are none), in
    float64: what :func:`_sweep` starts from."""
    return np.float64(_block_max(x[xo + lo:xo + min(lo + _BLOCK, hi)])) if hi > lo else -np.inf


def _sweep(x, xo, g, go, tmp, to, lo, hi, shifts, bm, nxo, behind):  # pragma: no cover - compiled by numba
    """The sweep from memory over elements [lo, hi) of a row (x from x[xo], g from g[go]), block by block:
    the block's max raises the running max m, then ``e = exp(x - m)`` is stored in ``tmp`` from tmp[to] (the
    output itself, or a float32 row of this thread's for 16-bit outputs) and summed (with ``g * e`` for the
    VJP), the sums so far rescaled when m rose. ``shifts[j]`` keeps the m block j used, for :func:`_scale`.
    While m is -inf (a masked prefix) the shift is 0, so exp(-inf) is 0, not NaN. The next block's max is
    found in the same loop as this block's exp (on its bits, as :func:`_block_max`): its loads from memory
    overlap the exp's arithmetic, where a max loop of its own waits for memory with the arithmetic idle. The
    first block's max ``bm`` comes from the caller (:func:`_first_max`); after the last block comes the first
    of the next row, at x[nxo] (the same elements [lo, hi); ``nxo`` -1: none), whose max is returned.
    Compiled with ``_BEHIND`` (:func:`_kernel`), it also scales the row before, block j in block j's loops, as
    :func:`_scale` would (``behind``: its exp values ``ptmp``, a row of the worker's own, its g from g[pgo], its
    output from out[poo], its shifts, max and sums; else None).
    Returns (m, sum e, sum g e, the next row's first max), the sums relative to the final m."""
    _wide()
    _no_alias()
    if _BEHIND:
        ptmp, pgo, out, poo, pshifts, pm, ps, pd = behind
        pdot = _FT(pd / ps)
    bits = x.view(_KEY_T)
    m = -np.inf
    s = 0.0
    d = 0.0
    blocks = (hi - lo + _BLOCK - 1) // _BLOCK
    following = -np.inf
    for j in range(blocks):
        b = lo + j * _BLOCK
        xb = x[xo + b:xo + min(b + _BLOCK, hi)]  # slices: loops from 0 need no negative-index wraparound
        gb = g[go + b:go + b + xb.size]
        tb = tmp[to + b:to + b + xb.size]
        if _BEHIND:  # the same block of the row behind (rows of one length: blocks of one size)
            pb, pg, ob = ptmp[b:b + xb.size], g[pgo + b:pgo + b + xb.size], out[poo + b:poo + b + xb.size]
            f = _FT((1.0 if pshifts[j] == pm else np.exp(pshifts[j] - pm)) / ps)
        if j + 1 < blocks:  # the next block of this row, or after the last the next row's first (may be longer)
            nb = bits[xo + b + xb.size:xo + min(b + xb.size + _BLOCK, hi)]
        elif nxo >= 0:
            nb = bits[nxo + lo:nxo + min(lo + _BLOCK, hi)]
        else:
            nb = bits[0:0]
        if bm > m:
            if m > -np.inf:  # else the sums are 0 (or NaN), with nothing to rescale
                scale = np.exp(m - bm)
                s *= scale
                d *= scale
            m = bm
        shifts[j] = m
        shift = _FT(m if m > -np.inf else 0.0)
        key = _order_key(nb[0]) if nb.size else _KEY_T(0)
        both = min(nb.size, xb.size)
        for i in range(both):  # this block's exp and the next one's max (and the row behind's block, scaled)
            tb[i] = _exp(_load(xb[i]) - shift)
            k = _order_key(nb[i])
            key = k if k > key else key
            if _BEHIND:
                ob[i] = _store(pb[i] * f * (_load(pg[i]) - pdot) if _WITH_G else pb[i] * f)
        for i in range(both, nb.size):  # the next row's first block, past this row's last
            k = _order_key(nb[i])
            key = k if k > key else key
        following = np.float64(_load(_KEY_T(_order_key(key)).view(_STORE_T))) if nb.size else -np.inf
        xr, tr = xb[both:], tb[both:]  # the last block (or what the next one lacks)
        for i in range(xr.size):
            tr[i] = _exp(_load(xr[i]) - shift)
            if _BEHIND:
                ob[both + i] = _store(pb[both + i] * f * (_load(pg[both + i]) - pdot) if _WITH_G else pb[both + i] * f)
        # the block's sums in the compute dtype, in an order fixed by construction (:func:`_lane_sums`), the
        # row's in float64
        acc, dot = _sums(tb, _U64(0), gb, _U64(0), _U64(tb.size))
        s += np.float64(acc)
        d += np.float64(dot)
        bm = following
    return m, s, d, following


def _scale(g, go, tmp, to, out, oo, lo, hi, shifts, m, s, d, keep):  # pragma: no cover - compiled by numba
    """The sweep from cache: block j of ``tmp`` (from tmp[to]) times exp(shifts[j] - m) / s, and times
    (g - d / s) for the VJP, kept in ``tmp`` (``keep``: the output itself, or the Jacobian's s) or rounded
    into ``out`` (from out[oo]; 16-bit). A block swept under a -inf max gets factor 0 (NaN where the whole
    row is -inf: the policy)."""
    _wide()
    _no_alias()
    dot = _FT(d / s)
    for j in range((hi - lo + _BLOCK - 1) // _BLOCK):
        b = lo + j * _BLOCK
        tb = tmp[to + b:to + min(b + _BLOCK, hi)]
        gb = g[go + b:go + b + tb.size]
        f = _FT((1.0 if shifts[j] == m else np.exp(shifts[j] - m)) / s)  # no libm call for one block
        if keep:
            if _WITH_G:
                for i in range(tb.size):
                    tb[i] = tb[i] * f * (_load(gb[i]) - dot)
            else:
                for i in range(tb.size):
                    tb[i] = tb[i] * f
        else:
            ob = out[oo + b:oo + b + tb.size]
            if _WITH_G:
                for i in range(tb.size):
                    ob[i] = _store(tb[i] * f * (_load(gb[i]) - dot))
            else:
                for i in range(tb.size):
                    ob[i] = _store(tb[i] * f)


def _finish_row(g, go, tmp, to, out, oo, un, keep):  # pragma: no cover - compiled by numba, inlined
    """A row of :func:`_rows` after its exp: the sums of e (and of ``g * e``) in the compute dtype, in the order
    built into :func:`_lane_sums` (float64 sums had taken 1.04-1.16x the time of a row in cache), then the
    scaling."""
    acc, dot = _sums(tmp, to, g, go, un)
    s = np.float64(acc)
    inv = _FT(1.0 / s)
    dot = _FT(np.float64(dot) / s)
    for i in range(un):
        v = tmp[to + i] * inv
        if _WITH_G:
            v = v * (_load(g[go + i]) - dot)
        if keep:
            tmp[to + i] = v
        else:
            out[oo + i] = _store(v)


def _short_rows(x, xs, g, gs, tmp, ts, out, n, lo, hi, keep):  # pragma: no cover - compiled by numba
    """:func:`_rows` for rows shorter than a vector (n < :data:`SHORT_ROWS`): the rows, not a row's elements,
    in the vector lanes, :data:`ROWS_AT_ONCE` at a time. For each element index k, row j's max, exp and sums
    advance in lane j (x read with the row stride), the exp values kept in a buffer of the worker's own, k
    major; then each row is scaled as in :func:`_finish_row`. A row's sums add its elements in turn, in the
    compute dtype, whichever lane or scalar remainder it falls in, so a row gives the same bits alone or among
    others."""
    _wide()
    _no_alias()
    bits = x.view(_KEY_T)
    un, uxs, ugs, uts, at_once = _U64(n), _U64(xs), _U64(gs), _U64(ts), _U64(_AT_ONCE)
    e = _stack_e()  # e[k * _AT_ONCE + j]: element k of row j of the batch
    keys = _stack_keys()
    m, s, d = _stack_m(), _stack_s(), _stack_d()  # a row's max, sum of e and sum of g * e
    for first in range(_U64(lo), _U64(hi), at_once):
        rows = min(_U64(hi) - first, at_once)
        for j in range(rows):
            keys[j] = _order_key(bits[(first + j) * uxs])
        for k in range(_U64(1), un):
            for j in range(rows):
                key = _order_key(bits[(first + j) * uxs + k])
                keys[j] = key if key > keys[j] else keys[j]
        for j in range(rows):
            m[j] = _load(_KEY_T(_order_key(keys[j])).view(_STORE_T))
            s[j] = 0
            d[j] = 0
        for k in range(un):
            for j in range(rows):
                v = _exp(_load(x[(first + j) * uxs + k]) - m[j])
                e[k * at_once + j] = v
                s[j] += v
                if _WITH_G:
                    d[j] += v * _load(g[(first + j) * ugs + k])
        for j in range(rows):
            total = np.float64(s[j])
            inv = _FT(1.0 / total)
            dot = _FT(np.float64(d[j]) / total)
            r = first + j
            for k in range(un):
                v = e[k * at_once + j] * inv
                if _WITH_G:
                    v = v * (_load(g[r * ugs + k]) - dot)
                if keep:
                    tmp[r * uts + k] = v
                else:
                    out[r * un + k] = _store(v)


def _rows(x, xs, g, gs, tmp, ts, out, n, lo, hi, keep):  # pragma: no cover - compiled by numba
    """Rows lo..hi-1 of at most :data:`ROW_ELEMENTS` each (n > 0), row r of x from x[r * xs] (g likewise),
    its exp values in tmp from tmp[r * ts] (``ts`` 0: one row of the worker's own; ``tmp`` and ``keep`` as
    in :func:`_scale`), the result in out from out[r * n]. Per row: the max (on the bits, as
    :func:`_block_max`), ``e = exp(x - max)`` into tmp (a ragged row's last elements as a vector overlapping
    the one before, :data:`_OVERLAP_TAIL`), then its sums and scaling (:func:`_finish_row`, inlined). One call
    for a worker's whole run of rows, indexed by unsigned offsets: slices and arrays passed per
    row cost NRT reference counts (40-60 ns a row, measured), and a signed index is wrapped around when
    negative, which LLVM does not vectorise. The rows with a next row run in one loop and the last after it
    (no read ahead past x). Before the arrays were marked ``noalias`` (:func:`_no_alias`), LLVM checked once,
    for the whole run, that the loops' stores missed the rows they read, over the rows the loop could read;
    with the last row's read ahead among them that range reached a row past x, so an output starting within
    a row of x's end (glibc puts a new block 16 bytes after the one before) failed the check and every row
    ran scalar, float32 4-6x the time (256 x 64: 41-56 us against 9-10;
    ``benchmarks/test_numba_fused_placement.py``). A row of only -inf: exp(NaN), the policy's NaN row."""
    _wide()
    _no_alias()
    bits = x.view(_KEY_T)
    un = _U64(n)
    if hi <= lo:
        return
    # a ragged row's last elements as one whole vector that overlaps the one before (exp and max come out the
    # same when repeated), so that no scalar loop computes an exp; a row shorter than a vector stays scalar
    whole = un - un % _U64(_VECTOR)
    tail = un - _U64(_VECTOR) if whole != un and un >= _U64(_VECTOR) else whole
    mx = _block_max(x[lo * xs:lo * xs + n])  # the first row's; the others' a row ahead
    last = _U64(hi - 1)
    for r in range(_U64(lo), last):  # the next row's max in the same loop: its loads overlap this row's exp
        xo, go, to, oo = r * _U64(xs), r * _U64(gs), r * _U64(ts), r * un
        no = xo + _U64(xs)
        m = _order_key(bits[no])
        for i in range(whole):
            tmp[to + i] = _exp(_load(x[xo + i]) - mx)
            k = _order_key(bits[no + i])
            m = k if k > m else m
        for i in range(tail, un):  # the last vector again, or the scalar rest of a row shorter than a vector
            tmp[to + i] = _exp(_load(x[xo + i]) - mx)
            k = _order_key(bits[no + i])
            m = k if k > m else m
        mx = _load(_KEY_T(_order_key(m)).view(_STORE_T))
        _finish_row(g, go, tmp, to, out, oo, un, keep)
    xo, go, to, oo = last * _U64(xs), last * _U64(gs), last * _U64(ts), last * un
    for i in range(whole):
        tmp[to + i] = _exp(_load(x[xo + i]) - mx)
    for i in range(tail, un):
        tmp[to + i] = _exp(_load(x[xo + i]) - mx)
    _finish_row(g, go, tmp, to, out, oo, un, keep)


def _row_run(x, xs, g, gs, tmp, ts, out, n, lo, hi, keep):  # pragma: no cover - compiled by numba, inlined
    """Rows lo..hi-1 of at most :data:`ROW_ELEMENTS` each, arguments as :func:`_rows`: those shorter than a
    vector with the rows in the lanes (:func:`_short_rows`), the others one after another (:func:`_rows`)."""
    if n < _SHORT:
        _short_rows(x, xs, g, gs, tmp, ts, out, n, lo, hi, keep)
    else:
        _rows(x, xs, g, gs, tmp, ts, out, n, lo, hi, keep)


def _rows_kernel(x, xs, g, gs, out, n, chunks, workers):  # pragma: no cover - compiled by numba
    """Every row of ``out`` (flat, rows of n): row r of x starts at x[r * xs] (g likewise). With ``chunks
    == 1`` the rows in ``workers`` contiguous runs, one per thread, both sweeps of a row while it is in this
    core's cache; else each row in ``chunks`` pieces, each swept by one thread, merged, then scaled by the
    same thread. 16-bit rows are widened as they are read, their exp values kept in float32 (a row per
    worker, two where a row longer than a block is scaled in the next one's sweep, :data:`BEHIND_BYTES`; a group's
    for the VJP's long rows, :data:`GROUP_BYTES`; or the whole input when rows are split) and rounded once, as
    they are written."""
    rows = out.size // n
    keep = not _NARROW
    if chunks == 1:
        for w in _range(workers):
            if _NARROW:
                tmp = np.empty(n, _FT)
            else:
                tmp = out
            shifts = np.empty((n + _BLOCK - 1) // _BLOCK)
            lo, hi = w * rows // workers, (w + 1) * rows // workers
            if n <= _ROWS_UP_TO:
                _row_run(x, xs, g, gs, tmp, 0 if _NARROW else n, out, n, lo, hi, keep)
                continue
            bm = _first_max(x, lo * xs, 0, n) if hi > lo else -np.inf
            group = _group_rows(n)
            behind_ok = _NARROW and n <= _BEHIND_UP_TO and hi - lo > 1
            if behind_ok and not (_WITH_G and hi - lo > group):  # each row scaled in the next one's sweep
                behind, shifts_behind = np.empty(n, _FT), np.empty_like(shifts)
                m, s, d, bm = _sweep(x, lo * xs, g, lo * gs, tmp, 0, 0, n, shifts, bm, (lo + 1) * xs, None)
                for r in range(lo + 1, hi):
                    tmp, behind, shifts, shifts_behind = behind, tmp, shifts_behind, shifts
                    nxo = (r + 1) * xs if r + 1 < hi else -1
                    m, s, d, bm = _sweep_behind(x, r * xs, g, r * gs, tmp, 0, 0, n, shifts, bm, nxo,
                                                (behind, (r - 1) * gs, out, (r - 1) * n, shifts_behind, m, s, d))
                _scale(g, (hi - 1) * gs, tmp, 0, out, (hi - 1) * n, 0, n, shifts, m, s, d, keep)
                continue
            if _NARROW:  # ``group`` rows swept into rows of the worker's own, then scaled into the output
                own, own_shifts, sums = np.empty(group * n, _FT), np.empty((group, shifts.size)), np.empty((group, 3))
                for first in range(lo, hi, group):
                    last = min(first + group, hi)
                    for r in range(first, last):
                        nxo = (r + 1) * xs if r + 1 < hi else -1  # the next row's max, ahead
                        i = r - first
                        sums[i, 0], sums[i, 1], sums[i, 2], bm = _sweep(x, r * xs, g, r * gs, own, i * n, 0, n,
                                                                        own_shifts[i], bm, nxo, None)
                    for r in range(first, last):
                        i = r - first
                        _scale(g, r * gs, own, i * n, out, r * n, 0, n, own_shifts[i], sums[i, 0], sums[i, 1],
                               sums[i, 2], keep)
                continue
            for r in range(lo, hi):  # swept into the output, then scaled there
                nxo = (r + 1) * xs if r + 1 < hi else -1  # the next row's max, ahead
                m, s, d, bm = _sweep(x, r * xs, g, r * gs, out, r * n, 0, n, shifts, bm, nxo, None)
                _scale(g, r * gs, out, r * n, out, r * n, 0, n, shifts, m, s, d, keep)
        return
    if _NARROW:
        tmp = np.empty(out.size, _FT)
    else:
        tmp = out
    size = (n + chunks * _BLOCK - 1) // (chunks * _BLOCK) * _BLOCK  # whole blocks
    shifts = np.empty((rows * chunks, size // _BLOCK))
    parts = np.empty((rows * chunks, 3))
    for k in _range(rows * chunks):
        r = k // chunks
        lo = min((k - r * chunks) * size, n)
        end = min(lo + size, n)
        parts[k, 0], parts[k, 1], parts[k, 2], _ = _sweep(x, r * xs, g, r * gs, tmp, r * n, lo, end, shifts[k],
                                                          _first_max(x, r * xs, lo, end), -1, None)
    for r in range(rows):
        head = r * chunks
        m = parts[head, 0]
        for c in range(1, chunks):
            m = max(m, parts[head + c, 0])
        s = 0.0
        d = 0.0
        for c in range(chunks):
            pm = parts[head + c, 0]
            scale = 1.0 if pm == m else np.exp(pm - m)  # a chunk of only -inf under a -inf max: 1, not NaN
            s += parts[head + c, 1] * scale
            d += parts[head + c, 2] * scale
        parts[head, 0], parts[head, 1], parts[head, 2] = m, s, d
    for k in _range(rows * chunks):
        r = k // chunks
        lo = min((k - r * chunks) * size, n)
        head = r * chunks
        _scale(g, r * gs, tmp, r * n, out, r * n, lo, min(lo + size, n), shifts[k], parts[head, 0],
               parts[head, 1], parts[head, 2], keep)


def _jacobian_kernel(x, xs, out, n, parts, workers):  # pragma: no cover - compiled by numba
    """``out`` (flat, one n x n block per row of x) = diag(s) - s s^T, each row's block written once:
    s in the compute dtype (from the softmax sweeps), then block row i as -s_i s_j with s_i - s_i^2 on the
    diagonal, rounded once into the output's dtype. The rows in ``workers`` contiguous runs, one per thread,
    each row's block cut into ``parts`` bands of block rows (for fewer rows than threads; each band's worker
    computes s anew, in a row of its own). Rows of up to :data:`ROW_ELEMENTS` in whole rows get s for the
    worker's whole run in one :func:`_rows` call; block rows are indexed by unsigned offsets, not sliced. A
    call per row and a slice per block row cost NRT reference counts (40-60 ns each), at 256 x 2 most of the
    call (28 us, measured)."""
    rows = out.size // (n * n)
    tasks = rows * parts
    at_once = n <= _ROWS_UP_TO and parts == 1  # s of a worker's rows in one call, into s_all
    s_all = np.empty(rows * n if at_once else 0, _FT)
    un = _U64(n)
    for w in _range(workers):
        _wide()
        sr = s_all if at_once else np.empty(n, _FT)
        shifts = np.empty((n + _BLOCK - 1) // _BLOCK)
        first, stop = w * tasks // workers, (w + 1) * tasks // workers
        if at_once and stop > first:
            _row_run(x, xs, x, xs, s_all, n, s_all, n, first, stop, True)
        last = -1
        for k in range(first, stop):
            r = k // parts
            if not at_once and r != last:
                if n <= _ROWS_UP_TO:
                    _row_run(x, xs, x, xs, sr, 0, sr, n, r, r + 1, True)
                else:
                    bm = _first_max(x, r * xs, 0, n)
                    m, s, d, _ = _sweep(x, r * xs, x, r * xs, sr, 0, 0, n, shifts, bm, -1, None)
                    _scale(x, r * xs, sr, 0, out, 0, 0, n, shifts, m, s, d, True)
                last = r
            so = _U64(r) * un if at_once else _U64(0)  # row r's s in sr
            band = k - r * parts
            for i in range(_U64(band * n // parts), _U64((band + 1) * n // parts)):
                v = sr[so + i]
                start = (_U64(r) * un + i) * un
                for j in range(un):
                    out[start + j] = _store(-v * sr[so + j])
                out[start + i] = _store(v - v * v)


_range = range  # replaced in each compiled variant's globals (see _kernel)
_exp = _load = _store = _wide = _no_alias = _sums = _sweep_behind = _group_rows = None
_BEHIND = False
_BEHIND_UP_TO = 0
_stack_e = _stack_keys = _stack_m = _stack_s = _stack_d = None
_VECTOR = 8
_SHORT = 8
_AT_ONCE = 256
_KEY_T, _STORE_T, _KEY_SHIFT, _KEY_MASK = np.int64, np.float64, 63, np.int64(2**63 - 1)
_BLOCK = BLOCK
_ROWS_UP_TO = ROW_ELEMENTS
_WITH_G = False
_NARROW = False
_FT = np.float64



def _variant(fn, names: dict, suffix: str, **options):
    """``fn`` compiled with ``names`` in its globals, under a name of its own (the on-disk cache keys on it)."""
    import numba

    clone = types.FunctionType(fn.__code__, {**fn.__globals__, **names}, fn.__name__ + suffix, fn.__defaults__)
    clone.__qualname__ = clone.__name__
    return numba.njit(**{"cache": True, "error_model": "numpy", "fastmath": FASTMATH, **options})(clone)


#: the LLVM function attribute that lets the loop vectorizer use 512-bit registers where the CPU has AVX-512
#: (LLVM prefers 256 bits on Intel's AVX-512 cores, a default from Skylake's clock throttling)
PREFER_WIDE = '"prefer-vector-width"="512"'


@functools.lru_cache(maxsize=None)
def _wide_vectors():
    """A Numba intrinsic that marks the function calling it with :data:`PREFER_WIDE` and emits no code: per
    function, where ``NUMBA_CPU_FEATURES=-prefer-256-bit`` would change every Numba function in the process.
    llvmlite's attribute set accepts only its list of keyword attributes, so the string attribute is added
    with ``set.add``; it is written into the function's IR as it is printed for LLVM. Where llvmlite's
    attributes are no set (another version), the kernels compile as before, at LLVM's preferred width.
    Measured (issue 24, thread CPU time, one thread, the loaded 2-core machine): 256 x 1024 float32 softmax
    0.73-1.16 -> 0.58-0.85 ns per element, against torch.softmax's 0.61-0.90 (ATen's AVX-512 kernels)."""
    from numba.core import types as nb_types
    from numba.extending import intrinsic

    @intrinsic
    def wide_vectors(typingctx):
        def codegen(context, builder, signature, args):
            attributes = builder.function.attributes
            if isinstance(attributes, set):
                set.add(attributes, PREFER_WIDE)
            return context.get_dummy_value()

        return nb_types.none(), codegen

    return wide_vectors


@functools.lru_cache(maxsize=None)
def _no_alias():
    """A Numba intrinsic that marks every array data pointer among the arguments of the function calling it
    ``noalias`` and emits no code: LLVM then knows that the loops' stores miss what they read and compiles one
    vector loop, with no runtime check choosing between it and a scalar copy by where the arrays lie (such a
    check had sent every row to the scalar copy for an output within a row of x's end; float32 ``_rows`` had
    10 of them). Same time (A/B against the kernels without it, 2026-12-07: 0.96-1.07x, in cache and from
    memory), same softmax bits; the VJP's sums moved by an ulp (1e-16 to 5e-7). Pointers to bytes (Numba's
    meminfo and parent object) are left unmarked; where llvmlite's pointers carry no element type (opaque),
    nothing is marked. The callers' contract: an array they write is
    never read or written through another argument in the same call; two arguments may be one array where
    the function writes neither, or writes one and never touches the other (``tmp`` and ``out`` under
    ``keep``)."""
    from llvmlite import ir
    from numba.core import types as nb_types
    from numba.extending import intrinsic

    byte = ir.IntType(8)

    @intrinsic
    def no_alias(typingctx):
        def codegen(context, builder, signature, args):
            for argument in builder.function.args:
                pointee = getattr(argument.type, "pointee", None)
                if isinstance(argument.type, ir.PointerType) and pointee is not None and pointee != byte:
                    argument.add_attribute("noalias")
            return context.get_dummy_value()

        return nb_types.none(), codegen

    return no_alias


@functools.lru_cache(maxsize=None)
def _stack_array(dtype: str, size: int):
    """A Numba intrinsic ``stack_array() -> array`` of ``size`` elements of ``dtype`` (uninitialised) on the
    calling function's stack, allocated once in its entry block: no heap allocation (Numba's ``np.empty``
    costs 50 ns a call, a fifth of a short row's call) and no reference count. It must not outlive the call."""
    from numba.core import cgutils
    from numba.core import types as nb_types
    from numba.extending import intrinsic

    element = getattr(nb_types, dtype)
    kind = nb_types.Array(element, 1, "C")

    @intrinsic
    def stack_array(typingctx):
        def codegen(context, builder, signature, args):
            data = cgutils.alloca_once(builder, context.get_data_type(element), size=size)
            array = context.make_array(kind)(context, builder)
            itemsize = context.get_constant(nb_types.intp, context.get_abi_sizeof(context.get_data_type(element)))
            context.populate_array(array, data=data, shape=[context.get_constant(nb_types.intp, size)],
                                   strides=[itemsize], itemsize=itemsize, meminfo=None)
            return array._getvalue()

        return kind(), codegen

    return stack_array


#: per compute dtype: rows shorter than this (a 512-bit vector) run with the rows in the vector lanes
#: (:func:`_short_rows`)
SHORT_ROWS = {"float32": 8, "float64": 4}
#: rows a :func:`_short_rows` pass takes at once (its buffer of exp values: at most 15 KiB, in L1)
ROWS_AT_ONCE = 256
#: per compute dtype, the elements of the vector whose exp a ragged row's last elements take, overlapping the
#: vector before (:func:`_rows`; float32 and the 16-bit formats, 512 bits); float64 keeps a scalar rest (1: none)
_OVERLAP_TAIL = {"float32": 16}
#: lanes of the sums' accumulators (:func:`_lane_sums`) per compute dtype: four 512-bit vectors (eight of 256
#: bits, or sixteen of 128, where the CPU has no AVX-512: the same lanes, so the same sums)
SUM_LANES = {"float32": 64, "float64": 32}


def _widen_vector(builder, v, compute, stored: str):
    """LLVM IR: a vector of ``stored`` elements (``float32``/``float64`` as themselves; ``bfloat16``,
    ``float16`` (the CPU's conversion) and ``float16-bits`` (the bit arithmetic of :func:`_f16_widen`) as i16
    bits) widened to the vector type ``compute``, as the kernels' loads widen them one by one."""
    from llvmlite import ir

    if stored in ("float32", "float64"):
        return v
    lanes, i32 = compute.count, ir.IntType(32)
    u32 = ir.VectorType(i32, lanes)

    def splat(value, kind=u32):
        return ir.Constant(kind, [kind.element(value)] * lanes)

    if stored == "float16":
        return builder.fpext(builder.bitcast(v, ir.VectorType(ir.HalfType(), lanes)), compute)
    h = builder.zext(v, u32)
    if stored == "bfloat16":
        return builder.bitcast(builder.shl(h, splat(16)), compute)
    magnitude = builder.and_(h, splat(0x7FFF))
    shifted = builder.shl(magnitude, splat(13))
    scaled = builder.fmul(builder.bitcast(shifted, compute), splat(float(_F16_SCALE), compute))  # as _f16_widen
    finite = builder.bitcast(scaled, u32)
    special = builder.icmp_unsigned(">=", magnitude, splat(0x7C00))
    bits = builder.select(special, builder.or_(shifted, splat(0x7F800000)), finite)
    return builder.bitcast(builder.or_(builder.shl(builder.and_(h, splat(0x8000)), splat(16)), bits), compute)


@functools.lru_cache(maxsize=None)
def _lane_sums(compute: str, stored: str, with_g: bool):
    """A Numba intrinsic ``lane_sums(t, to, g, go, n) -> (sum of t[to:to+n], sum of t * g)`` in the compute
    dtype (the second 0 unless ``with_g``; g's elements of kind ``stored``, widened as in
    :func:`_widen_vector`), written as LLVM IR whose order of additions is fixed by construction: a vector of
    :data:`SUM_LANES` accumulators, lane k summing elements k, k + lanes, ... (the last partial vector by a
    masked load, its missing lanes adding 0; none for a row of whole vectors, where four all-false masked loads
    had cost rows of 1024 from memory 1.1-1.3x the time), the lanes then halved in a tree (lanes k and k + h,
    h = lanes / 2, lanes / 4, ... 1). No fast-math flag lets LLVM reorder them, so a row's sums are the same bits
    in every kernel it passes through, wherever the row lies, whichever copy of a row function the kernel links and
    whether it was compiled afresh or read from the cache, and on CPUs with other vector widths: a loop that
    Numba compiles with ``reassoc`` has its order chosen by LLVM's vectoriser, and a kernel read from the cache
    gave the float32 VJP other bits (an ulp) than the same kernel compiled afresh. (``t * g + acc`` may become
    one fused multiply-add: the code generator's choice for the CPU, as in every loop here.)"""
    from llvmlite import ir
    from numba.core import types as nb_types
    from numba.extending import intrinsic

    lanes = SUM_LANES[compute]
    ft = ir.FloatType() if compute == "float32" else ir.DoubleType()
    vec, i1, i32, i64 = ir.VectorType(ft, lanes), ir.IntType(1), ir.IntType(32), ir.IntType(64)
    result = nb_types.UniTuple(nb_types.float32 if compute == "float32" else nb_types.float64, 2)

    def load(builder, base, i, element, mask):
        """The vector of ``lanes`` elements from base[i] (unaligned; only the lanes of ``mask``, else 0)."""
        kind = ir.VectorType(element, lanes)
        pointer = builder.bitcast(builder.gep(base, [i]), kind.as_pointer())
        alignment = {"float": 4, "double": 8, "i16": 2}[str(element)]
        if mask is None:
            return builder.load(pointer, align=alignment)
        name = f"llvm.masked.load.v{lanes}{element.intrinsic_name}."
        name += "p0" if getattr(pointer.type, "is_opaque", False) else f"p0v{lanes}{element.intrinsic_name}"
        signature = ir.FunctionType(kind, [pointer.type, i32, ir.VectorType(i1, lanes), kind])
        fn = builder.module.globals.get(name) or ir.Function(builder.module, signature, name)
        return builder.call(fn, [pointer, i32(alignment), mask, ir.Constant(kind, None)])

    def halved(builder, v):
        """The lanes summed in a tree: lanes k and k + h added, h = lanes / 2 down to 1."""
        h = lanes
        while h > 1:
            h //= 2
            low = ir.Constant(ir.VectorType(i32, h), [i32(k) for k in range(h)])
            high = ir.Constant(ir.VectorType(i32, h), [i32(k + h) for k in range(h)])
            v = builder.fadd(builder.shuffle_vector(v, v, low), builder.shuffle_vector(v, v, high))
        return builder.extract_element(v, i32(0))

    @intrinsic
    def lane_sums(typingctx, t, to, g, go, n):
        def codegen(context, builder, signature, args):
            t_data = context.make_array(signature.args[0])(context, builder, args[0]).data
            g_data = context.make_array(signature.args[2])(context, builder, args[2]).data
            g_element = context.get_data_type(signature.args[2].dtype)
            tp, gp, n = builder.gep(t_data, [args[1]]), builder.gep(g_data, [args[3]]), args[4]
            whole = builder.sub(n, builder.urem(n, i64(lanes)))
            zero = ir.Constant(vec, None)
            entry, fn = builder.block, builder.function
            head, body, tail = (fn.append_basic_block(f"lane_sums.{part}") for part in ("head", "body", "tail"))
            builder.branch(head)
            builder.position_at_end(head)
            i, acc, dot = builder.phi(i64), builder.phi(vec), builder.phi(vec)
            for phi, start in ((i, i64(0)), (acc, zero), (dot, zero)):
                phi.add_incoming(start, entry)
            builder.cbranch(builder.icmp_unsigned("<", i, whole), body, tail)

            def add(mask):
                tv = load(builder, tp, i, ft, mask)
                d = dot
                if with_g:
                    gv = _widen_vector(builder, load(builder, gp, i, g_element, mask), vec, stored)
                    d = builder.fadd(dot, builder.fmul(tv, gv))
                return builder.fadd(acc, tv), d

            builder.position_at_end(body)
            a, d = add(None)
            for phi, value in ((i, builder.add(i, i64(lanes))), (acc, a), (dot, d)):
                phi.add_incoming(value, body)
            builder.branch(head)
            builder.position_at_end(tail)
            rest, done = fn.append_basic_block("lane_sums.rest"), fn.append_basic_block("lane_sums.done")
            builder.cbranch(builder.icmp_unsigned("<", whole, n), rest, done)
            builder.position_at_end(rest)
            index = ir.VectorType(i64, lanes)
            left = builder.insert_element(ir.Constant(index, None), builder.sub(n, whole), i32(0))
            left = builder.shuffle_vector(left, left, ir.Constant(ir.VectorType(i32, lanes), None))
            mask = builder.icmp_unsigned("<", ir.Constant(index, [i64(k) for k in range(lanes)]), left)
            a, d = add(mask)
            builder.branch(done)
            builder.position_at_end(done)
            phis = []
            for whole_sum, last in ((acc, a), (dot, d)):
                phi = builder.phi(vec)
                phi.add_incoming(whole_sum, tail)
                phi.add_incoming(last, rest)
                phis.append(phi)
            return context.make_tuple(builder, signature.return_type, [halved(builder, p) for p in phis])

        return result(t, to, g, go, n), codegen

    return lane_sums


@functools.lru_cache(maxsize=None)
def _parts(dtype: str) -> dict:
    """The globals every kernel of ``dtype`` is compiled with: its exp, loads, stores and block max."""
    compute, load, store, needs = _conversions(dtype)
    store_t = np.dtype(np.uint16 if compute != dtype else dtype)  # 16-bit dtypes as their bits
    names = {"_exp": _build_exp(compute, EXP_DEGREE[dtype]), "_wide": _wide_vectors(),
             "_no_alias": _no_alias(),
             "_VECTOR": _OVERLAP_TAIL.get(compute, 1), "_BLOCK": BLOCK,
             "_FT": np.dtype(compute).type, "_SHORT": SHORT_ROWS[compute], "_AT_ONCE": ROWS_AT_ONCE,
             "_ROWS_UP_TO": ROW_ELEMENTS,
             "_NARROW": compute != dtype, "_STORED": store_t,
             "_load": _variant(load, needs, f"_{dtype}", fastmath={"contract"}),
             "_store": _variant(store, needs, f"_{dtype}", fastmath={"contract"})}
    key_t = np.dtype(f"int{8 * store_t.itemsize}").type  # the block max's keys (_order_key)
    keys = {"_KEY_T": key_t, "_STORE_T": store_t.type, "_KEY_SHIFT": 8 * store_t.itemsize - 1,
            "_KEY_MASK": key_t(np.iinfo(key_t).max)}
    keys["_order_key"] = _variant(_order_key, keys, f"_{dtype}")
    names["_block_max"] = _variant(_block_max, {**names, **keys}, f"_{dtype}")
    names.update(keys)
    return names


def _short_buffers(names: dict) -> dict:
    """The stack buffers of :func:`_short_rows` for the kernels compiled with ``names`` (:func:`_parts`): its exp
    values and per-row sums in the compute dtype, its keys in the block max's key type."""
    compute, key = np.dtype(names["_FT"]).name, np.dtype(names["_KEY_T"]).name
    rows, n = ROWS_AT_ONCE, names["_SHORT"]
    return {"_stack_e": _stack_array(compute, rows * (n - 1)), "_stack_keys": _stack_array(key, rows),
            "_stack_m": _stack_array(compute, rows), "_stack_s": _stack_array(compute, rows),
            "_stack_d": _stack_array(compute, rows)}


@functools.lru_cache(maxsize=None)
def _kernel(op: str, dtype: str, parallel: bool):
    """The kernel of ``op`` for ``dtype`` (a softgrad dtype name), parallel or serial (for inputs too small to
    repay starting threads), compiled on its first use (2 to 5 s each; the on-disk cache serves a later
    process): compiling all 24 at build took 80 to 140 s on the loaded 2-core machine, past the checker's
    start-up limit."""
    import numba
    from numba import int64, void
    from numba.types import Array

    names = {**_parts(dtype), "_WITH_G": op == "vjp"}
    stored = "float16-bits" if _conversions(dtype)[1] is _f16_widen else dtype
    names["_sums"] = _lane_sums(np.dtype(names["_FT"]).name, stored, op == "vjp")
    stored = numba.from_dtype(names["_STORED"])
    flat_in, flat_out = Array(stored, 1, "C", readonly=True), Array(stored, 1, "C")
    suffix = f"_{dtype}_{op}"
    names["_first_max"] = _variant(_first_max, names, suffix)
    parts = {**names, "_sweep": _variant(_sweep, {**names, "_BEHIND": False}, suffix),
             "_sweep_behind": _variant(_sweep, {**names, "_BEHIND": True}, suffix + "_behind"),
             "_BEHIND_UP_TO": behind_limit(op), "_scale": _variant(_scale, names, suffix),
             "_group_rows": _variant(group_rows, {}, ""),
             "_range": numba.prange if parallel else range}
    rows = {"_rows": _variant(_rows, {**names, "_finish_row": _variant(_finish_row, names, suffix, inline="always")},
                              suffix),
            "_short_rows": _variant(_short_rows, {**names, **_short_buffers(names)}, suffix)}
    parts["_row_run"] = _variant(_row_run, {**names, **rows}, suffix, inline="always")
    if op == "jacobian":
        body, signature = _jacobian_kernel, void(flat_in, int64, flat_out, int64, int64, int64)
    else:
        body, signature = _rows_kernel, void(flat_in, int64, flat_in, int64, flat_out, int64, int64, int64)
    kernel = _variant(body, parts, suffix + ("_parallel" if parallel else ""), parallel=parallel, nogil=True)
    kernel.compile(signature)
    return kernel


def _small_rows(x, g, out):  # pragma: no cover - compiled by numba
    """The serial kernel on 2-D C-contiguous x, g and out: three arguments for Numba's dispatcher to type
    instead of eight, and no reshaping in Python (together 0.7 us of a 1x16 call, measured)."""
    n = x.shape[1]
    _serial(x.reshape(x.size), n, g.reshape(g.size), n, out.reshape(out.size), n, 1, 1)


def _small_jacobian(x, out):  # pragma: no cover - compiled by numba
    """:func:`_small_rows` for the Jacobian (out: rows x n x n)."""
    n = x.shape[1]
    _serial(x.reshape(x.size), n, out.reshape(out.size), n, 1, 1)


@functools.lru_cache(maxsize=None)
def _small(op: str, dtype: str):
    """The serial kernel of ``op`` for float32 or float64 behind a 2-D signature (:func:`_small_rows`)."""
    import numba
    from numba import void
    from numba.types import Array

    t = numba.from_dtype(np.dtype(dtype))
    x_t, out_t = Array(t, 2, "C", readonly=True), Array(t, 3 if op == "jacobian" else 2, "C")
    names = {"_serial": _kernel(op, dtype, False)}
    if op == "jacobian":
        kernel, signature = _variant(_small_jacobian, names, f"_{dtype}"), void(x_t, out_t)
    else:
        kernel, signature = _variant(_small_rows, names, f"_{dtype}_{op}"), void(x_t, x_t, out_t)
    kernel.compile(signature)
    # writable inputs then convert to the read-only signature (as fast, measured) where Numba would otherwise
    # compile a specialisation of their own inside a call
    kernel.disable_compile()
    return kernel


def behind_limit(op: str) -> int:
    """The longest 16-bit row of ``op`` that is scaled one row behind: :data:`BEHIND_BYTES` over the bytes a
    worker keeps an element (two float32 exp values; for the VJP also two 16-bit g)."""
    return BEHIND_BYTES // (12 if op == "vjp" else 8)


def group_rows(n: int) -> int:
    """Rows of ``n`` 16-bit elements a worker sweeps before it scales them, where it does so
    (:data:`GROUP_BYTES`): as many as fill it with their float32 exp values, at least one."""
    return max(1, GROUP_BYTES // (4 * n))


def serial_limit(itemsize: int) -> int:
    """The work (elements of the result plus :data:`ROW_WEIGHT` a row) from which a call of elements of
    ``itemsize`` bytes runs on threads."""
    return SERIAL_BELOW_FLOAT64 if itemsize == 8 else SERIAL_BELOW


def _flat(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` (..., n) as a C-contiguous 1-D view that starts at its first element, and the stride between
    its rows in elements (0 for a row broadcast to every row). Copied first only where its rows are not
    evenly spaced runs of adjacent elements (a stride along the row, leading dims that do not merge, a
    negative row stride). The kernels only read it."""
    n = a.shape[-1]
    if a.flags.c_contiguous:
        return a.reshape(-1), n
    rows = a.size // n
    try:
        grid = a.reshape(rows, n, copy=False)
    except ValueError:  # leading dims that do not merge into one row stride
        grid = np.ascontiguousarray(a).reshape(rows, n)
    item = grid.itemsize
    step = grid.strides[0] if rows > 1 else n * item
    if (n > 1 and grid.strides[1] != item) or step < 0 or step % item:
        grid = np.ascontiguousarray(grid)
        step = n * item
    step //= item
    flat = np.lib.stride_tricks.as_strided(grid, shape=((rows - 1) * step + n,), strides=(item,), writeable=False)
    return flat, step


def _ops() -> dict:
    import numba

    kernels = {}  # keyed by dtype object (its name takes 2 us); bfloat16 arrives as ml_dtypes' NumPy dtype
    _kernel("softmax", "float32", True)  # the build compiles one kernel (the rest: on first use)
    most_threads = numba.config.NUMBA_NUM_THREADS

    def parts(rows: int, n: int, most: int) -> int:
        """Pieces each row's work is cut into, for threads: 1 unless rows are fewer than threads."""
        if rows >= most_threads or n < 2 * MIN_CHUNK:
            return 1
        threads = numba.get_num_threads()
        return 1 if rows >= threads else min(-(-threads // rows), most)

    def workers(tasks: int, parallel: bool) -> int:
        """Threads a kernel's rows are dealt to (contiguous runs): one each, at most one per row."""
        return min(tasks, numba.get_num_threads()) if parallel else 1

    def call(op: str, x: np.ndarray, g: np.ndarray | None, shape: tuple[int, ...], size: int) -> np.ndarray:
        """Any input: a result of ``shape`` (``size`` elements) in x's dtype, made once the inputs are flat
        (:func:`result`, apart from them) and filled by the flat kernel of its size."""
        dtype, n = x.dtype, x.shape[-1]
        if size == 0:
            return np.empty(shape, dtype)
        limit = serial_limit(dtype.itemsize)
        parallel = size + ROW_WEIGHT * (x.size // n) >= limit
        kernel = kernels.get((op, dtype, parallel))
        if kernel is None:
            kernel = kernels[op, dtype, parallel] = _kernel(op, str(dtype), parallel)
            if dtype.itemsize != 2 and not parallel:
                small[op][dtype] = (_small(op, str(dtype)), limit)
        if dtype.itemsize == 2:  # float16 and bfloat16 as their bits
            x = x.view(np.uint16)
            g = None if g is None else g.view(np.uint16)
        rows = x.size // n
        xf, xs = (x.reshape(-1), n) if x.flags.c_contiguous else _flat(x)
        if g is None:
            gf, gs = xf, xs
        else:
            gf, gs = (g.reshape(-1), n) if g.flags.c_contiguous else _flat(g)
        out = result(shape, dtype, size * dtype.itemsize, xf, None if g is None else gf)
        flat = out.reshape(-1)
        if dtype.itemsize == 2:
            flat = flat.view(np.uint16)
        if op == "jacobian":
            bands = parts(rows, n * n, n)
            kernel(xf, xs, flat, n, bands, workers(rows * bands, parallel))
        else:
            kernel(xf, xs, gf, gs, flat, n, parts(rows, n, n // MIN_CHUNK), workers(rows, parallel))
        return out

    # the fast path: a float32 or float64 2-D C-contiguous input too small for threads goes straight to a
    # kernel with a 2-D signature (each check below costs 30-70 ns; the general path 2-3 us more in all);
    # per op, dtype -> (that kernel, the dtype's serial limit)
    small: dict[str, dict] = {"softmax": {}, "vjp": {}, "jacobian": {}}
    small_softmax, small_vjp, small_jacobian = small["softmax"], small["vjp"], small["jacobian"]

    def result(shape: tuple[int, ...], dtype: np.dtype, nbytes: int, x: np.ndarray, g: np.ndarray | None):
        """A new result of ``nbytes``: from :data:`ALIGNED_FROM` bytes on a cache line, from :data:`APART_FROM`
        also apart from the x and g the kernel reads (:func:`softgrad.aligned.empty_apart`), else ``np.empty``."""
        if nbytes < ALIGNED_FROM:
            return np.empty(shape, dtype)
        if nbytes < APART_FROM:
            return aligned.empty(shape, dtype)
        return aligned.empty_apart(shape, dtype, (x,) if g is None else (x, g))

    def softmax(x: np.ndarray) -> np.ndarray:
        fast = small_softmax.get(x.dtype)
        if fast is not None and x.ndim == 2 and 0 < x.size and x.size + ROW_WEIGHT * x.shape[0] < fast[1] \
                and x.flags.c_contiguous:
            out = np.empty(x.shape, x.dtype)  # under the serial limit: below ALIGNED_FROM
            fast[0](x, x, out)
            return out
        return call("softmax", x, None, x.shape, x.size)

    def vjp(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        fast = small_vjp.get(x.dtype)
        if fast is not None and x.ndim == 2 and 0 < x.size and x.size + ROW_WEIGHT * x.shape[0] < fast[1] \
                and x.flags.c_contiguous and g.flags.c_contiguous:
            out = np.empty(x.shape, x.dtype)
            fast[0](x, g, out)
            return out
        return call("vjp", x, g, x.shape, x.size)

    def jacobian(x: np.ndarray) -> np.ndarray:
        fast = small_jacobian.get(x.dtype)
        size = x.size * x.shape[-1]
        if fast is not None and x.ndim == 2 and 0 < size and size + ROW_WEIGHT * x.shape[0] < fast[1] \
                and x.flags.c_contiguous:
            out = np.empty((*x.shape, x.shape[-1]), x.dtype)
            fast[0](x, out)
            return out
        return call("jacobian", x, None, (*x.shape, x.shape[-1]), size)

    return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}


def _numpy_dtype(name: str):
    """NumPy's type for a softgrad dtype name (bfloat16 from ml_dtypes), or None where NumPy has none here."""
    if name != "bfloat16":
        return np.dtype(name).type
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


#: bfloat16 arrives as ml_dtypes' NumPy dtype: declared where ml_dtypes is installed (found without importing it)
_DTYPES = ("float64", "float32", "float16") + (("bfloat16",) if importlib.util.find_spec("ml_dtypes") else ())


@softgrad.implementation(
    "numba-fused", family="numba", dtypes=_DTYPES, requires=("numba",), compiles=True,
    description="@njit(parallel=True): two sweeps per row (online max and sum, then the result from cache), "
    "a vectorised exp, 16-bit rows widened to float32 as read, long rows split across threads; the Jacobian "
    "written once",
)
def build(device: str):
    return _ops()

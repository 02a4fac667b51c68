"""The input catalogue: named cases, each tied to a real failure it guards against.

One catalogue serves the conformance tests, ``softgrad check`` and the benchmarks' accuracy tracks.
A case makes float64 logits ``x`` and a cotangent ``g`` from a seed derived from its name, rounded to the
target dtype, so the oracle sees exactly what the implementation sees.

Layouts (:data:`softgrad.prepared.LAYOUTS`): ``contiguous``; ``transposed`` (the implementation gets
``base.T`` of a ``(n, batch)`` array, a column-major view); ``sliced`` (it gets ``base[..., ::2]`` of a row
twice as long); ``padded`` (it gets ``buf[..., :n]`` of a buffer whose rows are padded past the next
multiple of 64 with NaN, as an LM head's logits ``logits[:, :vocab]``: the last stride 1, rows not packed).
The cotangent ``g`` has a layout of its own (by default ``x``'s), which may also be
``broadcast`` (one row, stride 0 over the batch) or ``scalar`` (one value, every stride 0), as the
gradients of ``sum(w * softmax(x))`` and of a sum loss are.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..contract import OPS, round_to_dtype
from ..prepared import G_LAYOUTS, LAYOUTS, base_shape
from ..prepared import view  # noqa: F401  (the layouts' view, applied by the one prepared call)

MakeFn = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class Case:
    """One named input: shape (as the implementation sees it), how to make it, and why it exists."""

    name: str
    shape: tuple[int, ...]
    make: MakeFn
    guards: str
    layout: str = "contiguous"
    ops: tuple[str, ...] = OPS
    quick: bool = True  # part of the quick set (``softgrad check --quick`` and the benchmark tracks)
    #: a size cut to the smallest that crosses its threshold (rows past a chunk, batches past a grid limit):
    #: in :func:`softgrad.testing.check`'s default with the quick set, though too slow for it with every entry
    threshold: bool = False
    g_layout: str | None = None  # the cotangent's layout; None: the same as ``x``'s

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"case {self.name}: layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if self.g_layout is not None and self.g_layout not in G_LAYOUTS:
            raise ValueError(f"case {self.name}: g layout {self.g_layout!r} is not one of {', '.join(G_LAYOUTS)}")

    @property
    def layout_of_g(self) -> str:
        return self.layout if self.g_layout is None else self.g_layout

    @property
    def n(self) -> int:
        return self.shape[-1]

    @property
    def rows(self) -> int:
        return int(np.prod(self.shape[:-1], dtype=np.int64))

    def base_shape(self) -> tuple[int, ...]:
        """Shape of the array the layout's view of ``x`` is taken from."""
        return base_shape(self.shape, self.layout)

    def inputs(self, dtype: str, draw: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(x, g)`` as float64 arrays holding values exact in ``dtype``, each in its layout's base form;
        ``draw`` > 0: other values of the same kind, shape and layouts (a later call of a caller's loop)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode() + (f"#{draw}".encode() if draw else b"")))
        logical = np.asarray(self.make(rng, self.shape), dtype=np.float64).reshape(self.shape)
        g = rng.standard_normal(self.shape)
        g_base = base_shape(self.shape, self.layout_of_g)
        if self.layout_of_g == "broadcast":  # what is repeated: one row of g ...
            g = g.reshape(-1, self.n)[0].copy() if g.size else np.zeros(self.n)
        elif self.layout_of_g == "scalar":  # ... or the 1 of a sum loss
            g = np.ones(())
        return round_to_dtype(_to_base(logical, self.layout, self.base_shape(), rng), dtype), round_to_dtype(
            _to_base(g, self.layout_of_g, g_base, rng), dtype
        )


def _to_base(a: np.ndarray, layout: str, base: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if layout in ("broadcast", "scalar"):
        return a  # made in its base form
    if layout == "transposed":
        return np.ascontiguousarray(np.swapaxes(a, -1, -2))
    if layout == "sliced":
        out = rng.standard_normal(base) * 1e3  # junk between the used columns, visible if read by mistake
        out[..., ::2] = a
        return out
    return a


# --- makers -------------------------------------------------------------------------------------------


def normal(scale: float, shift: float = 0.0) -> MakeFn:
    return lambda rng, shape: shift + scale * rng.standard_normal(shape)


def constant(value: float) -> MakeFn:
    return lambda rng, shape: np.full(shape, value)


def dominant(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape)
    flat = x.reshape(-1, shape[-1])
    flat[np.arange(flat.shape[0]), rng.integers(0, shape[-1], flat.shape[0])] += 40.0
    return x


def masked(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """About half the entries -inf, every row keeping at least one finite entry (an attention mask)."""
    x = 3 * rng.standard_normal(shape)
    flat = x.reshape(-1, shape[-1])
    mask = rng.random(flat.shape) < 0.5
    mask[np.arange(flat.shape[0]), rng.integers(0, shape[-1], flat.shape[0])] = False
    flat[mask] = -np.inf
    return x


def nonfinite_rows(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Rows that are all -inf, hold +inf, or hold NaN, between ordinary rows (the non-finite policy)."""
    x = rng.standard_normal(shape)
    x[1, :] = -np.inf
    x[3, 2] = np.inf
    x[5, 4] = np.nan
    x[6, :3] = -np.inf
    return x


def ties(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Integer logits in a narrow range: many exact ties, including ties at the max."""
    return rng.integers(-2, 3, shape).astype(np.float64)


# --- the value families of a training run: rows of several kinds, row r of kind r mod (number of kinds) ---


def _rows_of_kinds(kinds: tuple[Callable[[np.random.Generator, int], np.ndarray], ...]) -> MakeFn:
    """A maker whose row ``r`` is ``kinds[r % len(kinds)](rng, n)``: a few rows show every kind."""

    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        x = np.empty(shape)
        flat = x.reshape(-1, shape[-1])
        for r in range(flat.shape[0]):
            flat[r] = kinds[r % len(kinds)](rng, shape[-1])
        return x

    return make


#: logits at initialisation: every one equal (a zero-initialised head) or all near zero. The sum of exp(x - max)
#: is about n, past float16's largest number (65504) from n = 65520 on, and past a 16-bit running sum's reach
#: (2048 in float16, 256 in bfloat16) long before
near_uniform = _rows_of_kinds((lambda rng, n: np.zeros(n), lambda rng, n: 0.01 * rng.standard_normal(n)))


def _causal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A causal mask's first query: only the first key is seen."""
    row = np.full(n, -np.inf)
    row[:1] = 3 * rng.standard_normal(min(n, 1))
    return row


def _left_padded(rng: np.random.Generator, n: int) -> np.ndarray:
    """A left-padded sequence: the first three quarters -inf (whole chunks of a long row), then logits."""
    row = 3 * rng.standard_normal(n)
    row[: n - max(1, n // 4)] = -np.inf
    return row


def _right_padded(rng: np.random.Generator, n: int) -> np.ndarray:
    """A right-padded sequence with dropped keys: about half the first half -inf, the second half -inf."""
    row = 3 * rng.standard_normal(n)
    row[(n + 1) // 2:] = -np.inf
    row[1:][rng.random(n - 1) < 0.5] = -np.inf
    return row


#: masks as callers build them: a row of padding only (all -inf: NaN by the non-finite policy), a left-padded
#: row (its first chunks entirely -inf), a causal mask's first query (one finite entry), a right-padded row
#: with dropped keys
masked_rows = _rows_of_kinds((lambda rng, n: np.full(n, -np.inf), _left_padded, _causal, _right_padded))

#: large logits (a logit scale grown in training, scores not yet normalised): around +1e4 (exp overflows
#: without the max shift), around -1e4 (exp underflows to 0 / 0 without it), spread by 1e3 (one-hot rows)
large = _rows_of_kinds((lambda rng, n: 1e4 + 3 * rng.standard_normal(n),
                        lambda rng, n: -1e4 + 3 * rng.standard_normal(n),
                        lambda rng, n: 1e3 * rng.standard_normal(n)))


# --- the catalogue ------------------------------------------------------------------------------------

CATALOGUE: tuple[Case, ...] = (
    Case("normal-1", (8, 37), normal(1.0), "the everyday case; any wrong formula"),
    Case("normal-10", (8, 64), normal(10.0), "wide spread of probabilities; loss of small entries"),
    Case("near-uniform", (4, 100), normal(0.01), "cancellation in g - sum(g*s) when s is nearly uniform"),
    Case("single-row-1d", (23,), normal(2.0), "1-d input: shape handling without a batch axis"),
    Case("batch-1", (1, 50), normal(2.0), "batch of one: a squeezed or broadcast batch axis"),
    Case("two-element", (16, 2), normal(3.0), "n=2: the sigmoid limit, off-by-one loop bounds"),
    Case("n-1", (5, 1), normal(5.0), "n=1: s=1, J=0, vjp=0; division and loop bounds"),
    Case("empty-row", (3, 0), normal(1.0), "n=0: reductions over an empty axis must not raise"),
    Case("empty-batch", (0, 7), normal(1.0), "batch=0: an empty batch must give an empty result"),
    Case("large-1e4", (6, 40), normal(3.0, 1e4), "overflow without the max shift (exp(1e4) = inf)"),
    Case("spread-1e4", (6, 40), normal(1e4), "logits spread by 1e4: one-hot rows, underflow to 0"),
    Case("near-minus-1e7", (6, 40), normal(2.0, -1e7), "a log-sum-exp term rounding away the logits"),
    Case("constant-rows", (4, 33), constant(5.0), "exact ties everywhere: s must be exactly uniform"),
    Case("ties", (8, 29), ties, "ties at the max: argmax-based shortcuts"),
    Case("one-dominant", (8, 31), dominant, "s near one-hot: 1 - s cancels on the Jacobian diagonal"),
    Case("masked-neg-inf", (8, 45), masked, "-inf masks: NaN from exp(-inf - -inf) or 0 * inf"),
    Case("nonfinite-rows", (8, 12), nonfinite_rows, "policy: all -inf/+inf/NaN rows give NaN, others unharmed"),
    Case("uniform-4096", (2, 4096), constant(0.0), "16-bit running sum stalls at 2048 (s = 1/4096)"),
    Case("transposed", (8, 33), normal(2.0), "column-major input: code assuming contiguous rows", "transposed"),
    Case("sliced", (8, 33), normal(2.0), "strided rows (x[:, ::2]): code ignoring strides", "sliced"),
    Case("leading-3d", (2, 3, 17), normal(2.0), "several leading dims: reshape and axis mistakes"),
    Case("padded", (8, 50), normal(2.0), "rows of a padded buffer (logits[:, :vocab], rows of 64): code that "
         "takes a last stride of 1 for packed rows reads the padding", "padded"),
    Case("x-transposed-g-contiguous", (8, 33), normal(2.0), "x column-major, g row-major: g read in x's layout",
         "transposed", ops=("vjp",), g_layout="contiguous"),
    Case("x-sliced-g-transposed", (2, 5, 33), normal(2.0), "x strided, g column-major: one stride for both",
         "sliced", ops=("vjp",), g_layout="transposed"),
    Case("x-padded-g-contiguous", (2, 3, 64), normal(2.0), "x rows of a padded buffer (n = 64 padded to 128), g "
         "packed: g read with x's row stride", "padded", ops=("vjp",), g_layout="contiguous"),
    Case("x-contiguous-g-padded", (8, 50), normal(2.0), "g the gradient of padded logits' leading columns, x "
         "packed: x's row stride used for g", ops=("vjp",), g_layout="padded"),
    Case("g-broadcast", (8, 33), normal(2.0), "g one row over the batch (stride 0), as for sum(w * softmax(x))",
         ops=("vjp",), g_layout="broadcast"),
    Case("g-scalar", (2, 3, 17), normal(2.0), "g of a sum loss: one 1 with every stride 0; the VJP is 0",
         ops=("vjp",), g_layout="scalar"),
    Case("n-517", (2, 517), normal(2.0), "n just off a power of two: vector tail handling"),
    Case("n-1023", (2, 1023), normal(2.0), "n one short of a block size"),
    Case("n-1025", (2, 1025), normal(2.0), "n one past a block size: a second, partial block"),
    Case("n-781", (3, 781), normal(4.0), "odd n: tails of unrolled loops", quick=False),
    Case("long-row", (2, 16384), normal(2.0), "n >= 1e4: errors that only appear past some size", quick=False),
    Case("batch-70000", (70000, 3), normal(2.0), "batch past 65535 rows: GPU grid-dimension limits", quick=False),
    # sizes: each the smallest that crosses its threshold with a partial last block (in softgrad.testing's default)
    Case("n-8193", (2, 8193), normal(2.0), "rows one past 8192 entries: a second chunk of a chunked row, one entry "
         "long", quick=False, threshold=True),
    Case("n-65537", (1, 65537), normal(2.0), "a row one past 2**16 entries: 16-bit positions, every chunk size up "
         "to 65536 crossed with a partial chunk (65537 is prime)", quick=False, threshold=True),
    Case("batch-65537", (65537, 3), normal(2.0), "65537 rows: past a grid of 65535 blocks and 16-bit row indices, "
         "a partial last block for any block of rows (65537 is prime)", quick=False, threshold=True),
)

CASES: dict[str, Case] = {c.name: c for c in CATALOGUE}

# --- cases at a caller's own shape (a workload's), named so that any process rebuilds them from the name ---

#: what the logits of a shape case look like: ordinary scores, attention scores under a causal-like -inf
#: mask, or rows with one dominant entry (a confident classifier, a peaked vocabulary distribution); and the
#: value families of a training run (:data:`FAMILIES`)
VALUES: dict[str, MakeFn] = {"normal": normal(3.0), "masked": masked, "dominant": dominant,
                             "near-uniform": near_uniform, "large": large, "masked-rows": masked_rows}
#: what each kind of values is, as a case's ``guards`` says it
VALUE_TEXT: dict[str, str] = {
    "normal": "logits ~ N(0, 9)", "masked": "about half the logits -inf", "dominant": "one dominant logit",
    "near-uniform": "logits at initialisation: all 0 or all near 0 (sum of exp ~ n: a 16-bit sum overflows "
                    "past 65504, a 16-bit running sum stalls)",
    "large": "large logits: +-1e4 (no max shift: inf or 0/0) and spread by 1e3",
    "masked-rows": "masked rows: all -inf (NaN), left-padded (leading chunks all -inf), causal (one finite entry), "
                   "right-padded",
}
#: the value families of a training run, checked at every row length of a workload in every dtype it declares
#: (:func:`softgrad.workloads.check_cases`) with this many rows each: as many as the family has kinds of rows.
#: Initialisation (near-uniform), late training (dominant), grown logits (large) and masks (masked-rows)
FAMILIES: dict[str, int] = {"near-uniform": 2, "dominant": 2, "large": 3, "masked-rows": 4}
_SHAPE_CASE = re.compile(r"shape-(\d+(?:x\d+)*)-([a-z]+(?:-[a-z]+)*)-x-(\w+)-g-(\w+)")


def shape_case_name(shape: tuple[int, ...], values: str = "normal", layout: str = "contiguous",
                    g_layout: str = "contiguous") -> str:
    """``shape-16x262144-normal-x-contiguous-g-broadcast``: the name :func:`get_case` rebuilds the case from."""
    return f"shape-{'x'.join(str(int(d)) for d in shape)}-{values}-x-{layout}-g-{g_layout}"


def family_shape(shape: tuple[int, ...], family: str) -> tuple[int, ...]:
    """The shape a value family is checked at for a caller's ``shape``: the same row length and number of dims
    (a 1-d row becomes rows of a batch), :data:`FAMILIES` rows in the last leading dim, 1 in the others."""
    *lead, n = shape
    return (*[1] * (len(lead) - 1), FAMILIES[family], n)


def shape_case(name: str) -> Case:
    """The case a :func:`shape_case_name` names; ``KeyError`` for a name that is not one."""
    m = _SHAPE_CASE.fullmatch(name)
    if not m or m.group(2) not in VALUES or m.group(3) not in LAYOUTS or m.group(4) not in G_LAYOUTS:
        raise KeyError(f"unknown case {name!r}: a shape case is shape-<dims>-<{'|'.join(VALUES)}>-x-<layout>-g-"
                       f"<layout> (layouts of x: {', '.join(LAYOUTS)}; of g also broadcast, scalar)")
    shape = tuple(int(d) for d in m.group(1).split("x"))
    values, layout, g_layout = m.group(2), m.group(3), m.group(4)
    if layout == "transposed" and len(shape) < 2:
        raise KeyError(f"unknown case {name!r}: a transposed x needs two dims or more")
    ops = OPS if g_layout == "contiguous" else ("vjp",)  # only the VJP reads g: the others are the same case
    return Case(name, shape, VALUES[values], f"the caller's own shape {shape}: {VALUE_TEXT[values]}, x {layout}, "
                f"g {g_layout}", layout, ops=ops, g_layout=g_layout, quick=False)


def get_case(name: str) -> Case:
    """The case called ``name`` (from the catalogue, or a :func:`shape_case_name`); ``KeyError`` listing the
    known names otherwise."""
    if name.startswith("shape-"):
        return shape_case(name)
    try:
        return CASES[name]
    except KeyError:
        raise KeyError(f"unknown case {name!r}; known: {', '.join(CASES)}, or a shape case "
                       f"(shape-<dims>-<values>-x-<layout>-g-<layout>)") from None

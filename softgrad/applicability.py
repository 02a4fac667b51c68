"""The one rule for "does this registry entry run (op, dtype, device, shape) here?".

:func:`applicable` returns the reason it does not, or None: what the entry declares (ops, dtypes, devices,
``max_n``, ``max_elements``, the packages it needs), an output past the caller's budget, a device this
machine lacks. The checker, the conformance parameters, the asv and pytest suites and the roofline all ask it.
"""

from __future__ import annotations

import math

from .registry import Implementation


def output_elements(op: str, shape: tuple[int, ...]) -> int:
    """Elements of ``op``'s result for an input of ``shape``: rows * n * n for the Jacobian, rows * n otherwise."""
    rows, n = math.prod(shape[:-1]), shape[-1]
    return rows * n * (n if op == "jacobian" else 1)


def applicable(impl: Implementation, op: str, dtype: str, device: str, shape: tuple[int, ...], *,
               max_output_elements: int | None = None, budget: str = "output") -> str | None:
    """Why ``impl`` does not run ``op`` on a ``dtype`` input of ``shape`` on ``device``, or None if it does.

    In order, cheapest first: the entry's declarations and availability
    (:meth:`~softgrad.registry.Implementation.unsupported_reason`), the result's element count against
    ``max_output_elements`` (a reason naming the ``budget``), and whether ``device`` is present (which
    imports the entry's framework for a device other than the CPU).
    """
    shape = tuple(int(d) for d in shape)
    rows, n = math.prod(shape[:-1]), shape[-1]
    reason = impl.unsupported_reason(op, dtype, device, n, rows * n)
    if reason is not None:
        return reason
    if max_output_elements is not None and output_elements(op, shape) > max_output_elements:
        dims = f"{rows}x{n}x{n}" if op == "jacobian" else f"{rows}x{n}"
        what = "Jacobian" if op == "jacobian" else op
        return f"{what} of {dims} exceeds the {budget} budget of {max_output_elements} elements"
    if not impl.has_device(device):
        return f"{device} is not present"
    return None


__all__ = ["applicable", "output_elements"]

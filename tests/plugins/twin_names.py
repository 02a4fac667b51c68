"""Two names that would share one asv benchmark class (``Impl_col_x``): the second is refused."""

import softgrad


def _build(device):
    raise AssertionError("never built")


softgrad.implementation("col-x", family="twins")(_build)
softgrad.implementation("col_x", family="twins")(_build)

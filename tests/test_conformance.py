"""The conformance suite: every registered implementation x op x dtype x device x case.

Unavailable families are skipped with their reason; nothing else is skipped. Plugins named in
SOFTGRAD_PLUGINS are included, so a third party runs this same file on their implementation.
"""

import pytest

from softgrad.testing import assert_conforms, conformance_params


@pytest.mark.parametrize("impl,op,dtype,device,case", conformance_params())
def test_conforms(impl, op, dtype, device, case):
    assert_conforms(impl, op, dtype, device, case)

"""A plugin entry that writes into its check worker's own pipe, as a stray or corrupted message would:
the checker must fail that case, not crash.

``SOFTGRAD_TEST_JUNK`` picks what its softmax sends, once per worker, on the normal-1 case (n = 37):
``ready`` (a second ready message), ``untagged`` (an untagged dict), ``bad-record`` (a record message that
holds no record), ``other-case`` (a well-formed record of another case), ``bytes`` (bytes that do not
unpickle). Unset, it is a plain correct softmax.
"""

import gc
import os
from multiprocessing.connection import Connection

import numpy as np

import softgrad

_OTHER_CASE = {"impl": "plugin-out-of-protocol", "family": "plugin", "op": "softmax", "dtype": "float64",
               "device": "cpu", "case": "normal-10", "shape": [8, 64], "verdict": "pass"}
JUNK = {"ready": ("ready",), "untagged": {"ready": True}, "bad-record": ("record", {"ready": True}),
        "other-case": ("record", _OTHER_CASE)}
_sent = False


def _send_junk(kind: str) -> None:
    global _sent
    if _sent:
        return
    _sent = True
    for conn in [o for o in gc.get_objects() if isinstance(o, Connection)]:
        if not conn.closed and conn.writable:
            if kind == "bytes":
                conn.send_bytes(b"not a pickle")
            else:
                conn.send(JUNK[kind])


def _softmax(x):
    kind = os.environ.get("SOFTGRAD_TEST_JUNK")
    if kind and x.shape[-1] == 37:
        _send_junk(kind)
    if not x.shape[-1]:
        return x.copy()
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@softgrad.implementation("plugin-out-of-protocol", family="plugin", ops=("softmax",), dtypes=("float64",))
def build(device):
    return {"softmax": _softmax}

"""asv suite: every registered implementation x op x shape x dtype x device (see softgrad.bench.asv_suite).

The classes are generated from the registry, so a new entry, built-in or a plugin named in
SOFTGRAD_PLUGINS, is benchmarked without editing this file.
"""

from softgrad.bench.asv_suite import install

install(globals())

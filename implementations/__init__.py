"""Built-in implementations, one module per family, installed as ``softgrad.implementations``.

Each module registers its entries through softgrad's public API only, exactly as a third party would,
and imports its framework inside the build function, never at import time.
"""

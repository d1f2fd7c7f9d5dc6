"""
# Atomic file writes (moved)

The atomic writer now lives in `data_prep/atomic.py`, the lower layer, so that
`data_prep` imports nothing from `u2net_mini`. This module only re-exports its names for
code that still imports them from here (the lessons' tools, `bench.py`, `export.py`);
remove it once they import `data_prep.atomic`.
"""

from data_prep.atomic import atomic_write, sweep_temporaries

__all__ = ["atomic_write", "sweep_temporaries"]

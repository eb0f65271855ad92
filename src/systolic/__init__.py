"""systolic: a hardware-software co-design kit for int8 Transformer inference on FPGAs.

The gateware lives in :mod:`systolic.hw`, the compiler, golden models and driver in
:mod:`systolic.sw`, the simulation backends in :mod:`systolic.sim`.
"""

import os

# NumPy's threaded BLAS is 10-25x slower on small machines; callers can still override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

__all__ = ["Accelerator", "HardwareConfig"]

#: Names importable from the package itself, loaded on first use (``import systolic`` stays
#: light for tools that only need a submodule).
_EXPORTS = {"HardwareConfig": "systolic.hw.config", "Accelerator": "systolic.sw.driver"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'systolic' has no attribute {name!r}")

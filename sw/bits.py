"""Packing rows of lanes to and from the flat integers that carry stream payloads.

Lane 0 is in the least significant bits, as in ``amaranth.lib.data.ArrayLayout``.
"""

import numpy as np


def pack_lanes(values, width):
    """Pack signed or unsigned integers into one integer, ``width`` bits per lane."""
    mask = (1 << width) - 1
    word = 0
    for lane, value in enumerate(np.asarray(values).tolist()):
        word |= (int(value) & mask) << (lane * width)
    return word


def unpack_lanes(word, width, count, signed=True):
    """Inverse of :func:`pack_lanes`: a NumPy int64 vector of ``count`` lanes."""
    mask = (1 << width) - 1
    out = np.empty(count, dtype=np.int64)
    for lane in range(count):
        value = (word >> (lane * width)) & mask
        if signed and value >> (width - 1):
            value -= 1 << width
        out[lane] = value
    return out

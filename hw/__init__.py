"""Gateware: Amaranth components that generate the accelerator.

Depends on nothing else in the repository; ``systolic.sw`` and ``systolic.sim`` build on it.
"""

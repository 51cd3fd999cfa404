"""Simulated battery pack: cells, thermal, slave modules, sensors and fault injection."""

"""Imperative shell of the controller: buses, clock, signals, logging around the pure core."""

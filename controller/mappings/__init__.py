"""Shipped signal-to-measurement mappings, loaded with ``controller.ingest.load_mapping``."""

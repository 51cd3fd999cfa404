"""Controller configuration: TOML files validated into dataclasses at load."""

"""Output adapters: protocols that chargers and inverters speak, fed from the BMS snapshot."""

"""canbms command line: the composition root that wires controller, plant and buses."""

"""Hardware-in-the-loop harness: runs plant and controller together and checks reactions."""

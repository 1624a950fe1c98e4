"""Package data: built-in demonstrations and held-out text (read with importlib.resources)."""

"""I/O: the model file, ARPA, text."""

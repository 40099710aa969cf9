"""N-gram counting, smoothing and querying (pure stages over numpy arrays)."""

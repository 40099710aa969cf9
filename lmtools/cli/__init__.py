"""Command-line programs, one module per program; shared contract in common.py."""

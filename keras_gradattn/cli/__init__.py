"""Command-line entry points; scripts/ holds thin wrappers around them."""

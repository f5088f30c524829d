"""knowledge layer (see ARCHITECTURE.md)."""

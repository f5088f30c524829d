"""evals layer (see ARCHITECTURE.md)."""

"""tracing layer (see ARCHITECTURE.md)."""

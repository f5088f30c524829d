"""REST route families of the daytwo server (one module each)."""

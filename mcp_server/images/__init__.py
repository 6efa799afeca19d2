"""images layer."""

"""Small project-wide helpers (no torch dependency)."""

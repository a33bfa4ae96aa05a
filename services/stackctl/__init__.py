"""stackctl."""

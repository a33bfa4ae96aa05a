"""gateway_common."""

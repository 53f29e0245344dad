"""Logging, metrics and the health/metrics HTTP server every controller serves."""

"""Unit tests of the source-controller's Helm adapter."""

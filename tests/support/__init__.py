"""Test-only support: pytest fixtures over real servers (git over HTTP(S) and SSH, gpg keys), a webhook sink, a bus recorder.

What the demo and the benchmarks share with the tests lives in ``gitops_mesh_dev``.
"""

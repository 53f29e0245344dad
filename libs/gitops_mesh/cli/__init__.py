"""The ``gitops-mesh`` command line (``python -m gitops_mesh.cli``): one argparse subcommand tree, each command
in its own module; today ``push artifact``, the rest of Flux's CLI as it lands."""

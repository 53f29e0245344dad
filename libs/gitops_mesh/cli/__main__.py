"""``python -m gitops_mesh.cli``: the same entry point as the ``gitops-mesh`` console script."""

import sys

from gitops_mesh.cli.main import main

sys.exit(main())

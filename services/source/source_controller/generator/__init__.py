"""The ArtifactGenerator's build step: tenant globs, Flux's copy rules and strategies, the produced tree's digest.

Pure file work on directories the reconciler (:mod:`source_controller.artifactgenerator`) prepared: the
sources' unpacked artifacts in, one staging directory out. Nothing here talks to the cluster or the bus.
"""

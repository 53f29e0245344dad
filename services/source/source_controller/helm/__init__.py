"""HelmRepository and HelmChart's Helm adapter: fetch and parse indexes, resolve versions, pull and package charts."""

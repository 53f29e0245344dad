"""Fixtures for the git adapter's tests: real HTTP(S) and SSH git servers, repositories, gpg keys."""

from tests.support.fixtures import (  # noqa: F401
    git_http,
    git_http_auth,
    git_https,
    git_root,
    git_tls,
    gpg_keys,
    make_repo,
    sshd,
)

"""Real servers and repositories for tests: smart-HTTP git (http-backend), OpenSSH sshd, gpg keys."""

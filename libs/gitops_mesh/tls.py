"""TLS material of a client connection (a Secret's ``ca.crt``, ``tls.crt``/``tls.key``) as an SSL context: OCI
registries, Helm repositories.

The CA is added to the system roots, as Flux's OCIRepository and Helm getters do (``WithSystemCertPool``). Contexts are cached
by their material: a thousand objects sharing one CA Secret build one context, and aiohttp pools connections
per context.
"""

from __future__ import annotations

import functools
import shutil
import ssl
import tempfile
from pathlib import Path


class InvalidTLSMaterial(ValueError):
    """A CA, certificate or key that does not load (the message never quotes it)."""


def tls_context(ca: bytes | None = None, cert: bytes | None = None, key: bytes | None = None) -> ssl.SSLContext:
    """A client context verifying the server with the system roots plus ``ca``, presenting ``cert``/``key`` if given."""
    if (cert is None) != (key is None):
        raise InvalidTLSMaterial("tls.crt and tls.key must be given together")
    return _context(ca, cert, key)


@functools.lru_cache(maxsize=64)
def _context(ca: bytes | None, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca is not None:
        try:
            context.load_verify_locations(cadata=ca.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as e:
            raise InvalidTLSMaterial(f"ca.crt is not a valid PEM certificate: {e}") from e
    if cert is not None and key is not None:
        # load_cert_chain reads only files: a private directory (mkdtemp: 0700) that lives for the call.
        tmp = Path(tempfile.mkdtemp(prefix="oci-tls-"))
        try:
            (tmp / "tls.crt").write_bytes(cert)
            (tmp / "tls.key").write_bytes(key)
            context.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
        except (ssl.SSLError, ValueError) as e:
            raise InvalidTLSMaterial(f"tls.crt / tls.key are not a valid certificate and key: {e}") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return context

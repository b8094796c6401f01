"""TLS for the client (RESP) port, with Python's ``ssl`` module and Redis's option names.

Server side (``[server]`` in the config): ``tls_cert_file`` + ``tls_key_file`` (the node's
certificate chain and key: once set, the client port speaks TLS only), ``tls_ca_cert_file``
(the CAs that client certificates must chain to), ``tls_auth_clients`` (``"yes"``: a client
certificate is required, Redis's default; ``"optional"``: checked if sent; ``"no"``: not
asked for), ``tls_protocols`` (``"TLSv1.2 TLSv1.3"``: which versions to accept).

``reload_server_context`` re-reads the files into the live context (``SIGHUP``): new
handshakes use the new certificate and key; connections already open keep theirs. CAs can
only be added that way (OpenSSL has no "forget a CA"): removing one needs a restart.

Client side: ``client_context(ca_file, cert_file, key_file)`` for ``raftcache.Client``, the
CLI and ``up``; the server's certificate must name the address the client dials (an IP
SAN for "10.0.0.5:7001", a DNS SAN for "cache1:7001").
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from .errors import ConfigError

AUTH_CLIENTS = {"no": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "yes": ssl.CERT_REQUIRED}
PROTOCOLS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
DEFAULT_PROTOCOLS = "TLSv1.2 TLSv1.3"
# With TLS 1.3 a node that refuses our client certificate does so after the client's side of
# the handshake is done: the client sees the connection close before the first reply.
TLS_FIRST_CLOSE = (
    "TLS handshake failed (the node closed the connection before its first reply: does it "
    "require a client certificate we did not present, or not trust ours?)"
)


# A TLS-only port closes a plain-text connection at its first bytes (the handshake fails), so
# a plain-text client sees the same: the connection closed before the first reply.
PLAIN_FIRST_CLOSE = (
    "the node closed the connection before its first reply (is its port TLS-only? Then connect "
    "with TLS: --tls on the command line, ssl=True for Client/AsyncClient)"
)


def first_close(tls: bool) -> str:
    """What a client says when a node closes a fresh connection before its first reply."""
    return TLS_FIRST_CLOSE if tls else PLAIN_FIRST_CLOSE


def protocols_problem(value: str) -> str | None:
    """Why a ``tls_protocols`` value is unusable, or None (a config check)."""
    names = value.split()
    if not names:
        return "must name at least one protocol"
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown:
        return f"unknown protocol {unknown[0]!r} (supported: {', '.join(PROTOCOLS)}; older ones are insecure)"
    return None


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The TLS options of a node's client port (paths already resolved)."""

    cert_file: str
    key_file: str
    ca_cert_file: str = ""
    auth_clients: str = "yes"
    protocols: str = DEFAULT_PROTOCOLS


def _load(what: str, key: str, fn: object, *args: str) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except FileNotFoundError as exc:
        raise ConfigError(f"{what}: file not found: {exc.filename or args[0]}", key=key) from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot load {', '.join(args)}: {exc}", key=key) from None


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """An SSLContext for the client port; raises ConfigError naming the key at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(PROTOCOLS[n] for n in tls.protocols.split())
    context.minimum_version, context.maximum_version = versions[0], versions[-1]
    context.verify_mode = AUTH_CLIENTS[tls.auth_clients]
    _fill(context, tls)
    return context


def _fill(context: ssl.SSLContext, tls: ServerTls) -> None:
    _load("certificate and key", "server.tls_cert_file", context.load_cert_chain, tls.cert_file, tls.key_file)
    if tls.ca_cert_file:
        _load("CA certificates", "server.tls_ca_cert_file", context.load_verify_locations, tls.ca_cert_file)
    elif tls.auth_clients != "no":
        raise ConfigError(
            f"is needed to check client certificates (tls_auth_clients = {tls.auth_clients!r}); "
            "set it, or tls_auth_clients = \"no\"",
            key="server.tls_ca_cert_file",
        )


def reload_server_context(context: ssl.SSLContext, tls: ServerTls) -> None:
    """Re-read certificate, key and CAs into the live `context` (new handshakes use them).
    The files are tried in a scratch context first: a broken file changes nothing."""
    server_context(tls)  # raises ConfigError, leaving the live context untouched
    _fill(context, tls)


def client_context(ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """An SSLContext for connecting to a TLS node: verifies its certificate against `ca_file`
    (the system's CAs when None) and its name; presents `cert_file`/`key_file` if given."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context

"""TLS on every DFS port: a cluster CA, one cluster certificate, a CA pin in auth.txt.

- The master creates, at its first start, a CA (EC P-256; key and certificate 0600 in its
  data directory). The CA key never leaves that directory.
- The *node key* is derived from the join token (HMAC -> an EC private scalar), so every
  node holding the token (master, shadow, workers) has it and nothing else does. The master
  signs one cluster certificate for it with the CA, and puts the CA's own certificate in it
  (a private extension): a peer checks the chain from that one certificate.
- Join: a worker or the shadow opens a TLS connection to a master and takes its certificate
  if the key in it is the node key it derived itself (the handshake proves the server holds
  that key: only a token holder can) and the CA in it signed it. It then serves with that
  certificate (cached in its data directory). No secret crosses the wire.
- Clients pin the CA's fingerprint (auth.txt ``ca = sha256:...``): a server passes when its
  certificate was signed by that CA and the handshake proves it holds the key. Host names
  are not checked: nodes are addressed by IP.
- Consequence, as before TLS: whoever holds the join token can serve as a cluster node.

A process has one trust (``use``/``trust``: what its connections check) and at most one
server identity (``serving``): a node sets both at start, a client process from auth.txt.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from dfs import errors
from dfs.fsutil import write_atomic

ENV = "DFS_TLS"
"""Set to 1 or 0 in a node's environment: TLS on or off whatever its address (how the
local cluster forces it; a node's ``tls`` config field wins over it)."""
CA_KEY, CA_CERT = "tls-ca.key", "tls-ca.pem"
NODE_KEY, NODE_CERT = "tls-node.key", "tls-node.pem"
CA_IN_LEAF = x509.ObjectIdentifier("2.25.329800735698586629295641978511506172918")
"""A private extension of the cluster certificate: the CA certificate (DER) that signed it."""
CA_YEARS, LEAF_YEARS = 30, 30  # no renewal machinery: the CA and the cluster certificate last
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
JOIN_RETRY = 0.5
"""Seconds between tries to fetch the cluster certificate from a master at join."""


@dataclass(frozen=True)
class Trust:
    """What a connection accepts: a certificate from the CA with fingerprint ``pin``, or,
    when joining (``pin`` empty), one whose key is ``node_public`` (the derived node key)."""

    pin: str = ""
    node_public: bytes = b""


@dataclass(frozen=True)
class Identity:
    """A node's server certificate and key files, and its CA's fingerprint."""

    cert_file: str
    key_file: str
    pin: str


_trust: Trust | None = None
_serving: ssl.SSLContext | None = None


def use(trust: Trust | None) -> None:
    """Make ``trust`` what this process's connections check (None: plain TCP)."""
    global _trust
    _trust = trust


def trust() -> Trust | None:
    return _trust


def serving() -> ssl.SSLContext | None:
    """The server context of this process's node, or None when it serves without TLS."""
    return _serving


def activate(identity: Identity) -> None:
    """Serve with ``identity`` and check every peer against its CA."""
    global _serving
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(identity.cert_file, identity.key_file)
    _serving = context
    use(Trust(pin=identity.pin))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enabled(setting: bool | None, host: str) -> bool:
    """Whether a node listening on ``host`` uses TLS: ``setting`` if given, else $DFS_TLS,
    else on unless it listens on loopback only."""
    if setting is not None:
        return setting
    forced = os.environ.get(ENV, "")
    if forced in ("0", "1"):
        return forced == "1"
    return not is_loopback(host)


def fingerprint(ca_der: bytes) -> str:
    return "sha256:" + hashlib.sha256(ca_der).hexdigest()


def node_key(join_token: str) -> ec.EllipticCurvePrivateKey:
    digest = hmac.new(join_token.encode(), b"dfs tls node key v1", "sha512").digest()
    return ec.derive_private_key(int.from_bytes(digest, "big") % (P256_ORDER - 1) + 1,
                                 ec.SECP256R1())


def _public_bytes(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(builder: x509.CertificateBuilder, signer: ec.EllipticCurvePrivateKey,
          years: int) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (builder.serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * years))
            .sign(signer, hashes.SHA256()))


def _create_ca(data_dir: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name("dfs cluster CA"))
               .issuer_name(_name("dfs cluster CA")).public_key(key.public_key())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True))
    cert = _sign(builder, key, CA_YEARS)
    write_atomic(os.path.join(data_dir, CA_KEY), _key_pem(key))
    write_atomic(os.path.join(data_dir, CA_CERT), cert.public_bytes(serialization.Encoding.PEM))


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
           public: ec.EllipticCurvePublicKey) -> x509.Certificate:
    ca_der = ca.public_bytes(serialization.Encoding.DER)
    builder = (x509.CertificateBuilder().subject_name(_name("dfs cluster node"))
               .issuer_name(ca.subject).public_key(public)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.UnrecognizedExtension(CA_IN_LEAF, ca_der), critical=False))
    return _sign(builder, ca_key, LEAF_YEARS)


def _write_identity(data_dir: str, join_token: str, leaf: x509.Certificate) -> Identity:
    """Check ``leaf`` is for this join token's node key, then keep it with the key."""
    pin = check(leaf.public_bytes(serialization.Encoding.DER), node_trust(join_token))
    cert_file, key_file = os.path.join(data_dir, NODE_CERT), os.path.join(data_dir, NODE_KEY)
    write_atomic(key_file, _key_pem(node_key(join_token)))
    write_atomic(cert_file, leaf.public_bytes(serialization.Encoding.PEM))
    return Identity(cert_file, key_file, pin)


def node_trust(join_token: str) -> Trust:
    return Trust(node_public=_public_bytes(node_key(join_token).public_key()))


def master_identity(data_dir: str, join_token: str) -> Identity:
    """The first metadata server: its CA (created at the first start) and the cluster
    certificate it signs for the node key."""
    if not os.path.exists(os.path.join(data_dir, CA_CERT)):
        _create_ca(data_dir)
    with open(os.path.join(data_dir, CA_KEY), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(data_dir, CA_CERT), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise errors.DfsError(f"{CA_KEY} in {data_dir} is not an EC key")
    cached = _cached_identity(data_dir, join_token)
    if cached is not None and cached.pin == fingerprint(ca.public_bytes(
            serialization.Encoding.DER)):
        return cached
    return _write_identity(data_dir, join_token, _issue(ca_key, ca, node_key(join_token)
                                                           .public_key()))


def _cached_identity(data_dir: str, join_token: str) -> Identity | None:
    """The cluster certificate kept from an earlier start, if it is for this join token."""
    cert_file = os.path.join(data_dir, NODE_CERT)
    try:
        with open(cert_file, "rb") as f:
            leaf = x509.load_pem_x509_certificate(f.read())
        return _write_identity(data_dir, join_token, leaf)
    except (OSError, ValueError, errors.AuthenticationFailed):
        return None


def join_identity(data_dir: str, join_token: str, masters: Sequence[tuple[str, int]],
                  deadline: float | None = None) -> Identity:
    """A worker or the shadow: the cluster certificate kept from an earlier start, else
    the one a master presents (checked against the node key), retried until one answers."""
    cached = _cached_identity(data_dir, join_token)
    if cached is not None:
        return cached
    trust_node = node_trust(join_token)
    end = None if deadline is None else time.monotonic() + deadline
    while True:
        for host, port in masters:
            try:
                with socket.create_connection((host, port), timeout=5.0) as raw:
                    with client_context().wrap_socket(raw) as sock:
                        der = sock.getpeercert(binary_form=True)
                check(der, trust_node)
                assert der is not None
                return _write_identity(data_dir, join_token, x509.load_der_x509_certificate(der))
            except OSError:
                continue
        if end is not None and time.monotonic() > end:
            raise errors.Unavailable("no metadata server answered to hand out the cluster "
                                     "certificate")
        time.sleep(JOIN_RETRY)


def client_context() -> ssl.SSLContext:
    """Certificates are checked by ``check`` after the handshake (against the pinned CA,
    not a host name), so OpenSSL's own verification is off."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wrap(sock: socket.socket, trust: Trust, timeout: float) -> ssl.SSLSocket:
    """The client side of a TLS connection on ``sock``, its server checked by ``trust``."""
    sock.settimeout(timeout)
    wrapped = client_context().wrap_socket(sock)
    try:
        check(wrapped.getpeercert(binary_form=True), trust)
    except BaseException:
        wrapped.close()
        raise
    wrapped.settimeout(None)
    return wrapped


def check(der: bytes | None, trust: Trust) -> str:
    """AuthenticationFailed unless ``der`` is a cluster certificate ``trust`` accepts;
    -> the fingerprint of the CA that signed it."""
    refused = "server certificate refused: "
    if not der:
        raise errors.AuthenticationFailed(refused + "the server sent none")
    try:
        leaf = x509.load_der_x509_certificate(der)
        ca_der = leaf.extensions.get_extension_for_oid(CA_IN_LEAF).value
        assert isinstance(ca_der, x509.UnrecognizedExtension)
        ca = x509.load_der_x509_certificate(ca_der.value)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, x509.ExtensionNotFound):
        raise errors.AuthenticationFailed(refused + "not a DFS cluster certificate") from None
    pin = fingerprint(ca_der.value)
    if trust.pin and not hmac.compare_digest(pin, trust.pin):
        raise errors.AuthenticationFailed(
            refused + f"its CA is {pin}, not the cluster CA pinned in auth.txt ({trust.pin})")
    if trust.node_public and not hmac.compare_digest(_public_bytes(leaf.public_key()),
                                                     trust.node_public):
        raise errors.AuthenticationFailed(refused + "its key is not the join token's node key")
    if not trust.pin and not trust.node_public:
        raise errors.AuthenticationFailed(refused + "nothing to check it against")
    try:
        if not constraints.ca:
            raise InvalidSignature
        leaf.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        raise errors.AuthenticationFailed(refused + "not signed by its CA") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise errors.AuthenticationFailed(refused + "expired or not yet valid")
    return pin


def pin_of(data_dir: str) -> str:
    """The fingerprint of the CA kept in a master's ``data_dir``; "" when it has none."""
    try:
        with open(os.path.join(data_dir, CA_CERT), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
    except FileNotFoundError:
        return ""
    return fingerprint(ca.public_bytes(serialization.Encoding.DER))

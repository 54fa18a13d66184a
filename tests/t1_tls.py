"""dfs.tls and the CA pin in auth.txt, without a cluster (issue 9, point 6)."""

import datetime
import os
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dfs import auth, errors, tls

TOKEN = "ab" * 32
OTHER_TOKEN = "cd" * 32


def _der(identity):
    with open(identity.cert_file, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)


def test_the_master_creates_a_private_ca_once(tmp_path):
    identity = tls.master_identity(str(tmp_path), TOKEN)
    for name in (tls.CA_KEY, tls.CA_CERT, tls.NODE_KEY, tls.NODE_CERT):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600
    assert identity.pin == tls.pin_of(str(tmp_path))
    assert tls.master_identity(str(tmp_path), TOKEN) == identity  # a restart: the same CA
    assert tls.check(_der(identity), tls.Trust(pin=identity.pin)) == identity.pin
    assert tls.check(_der(identity), tls.node_trust(TOKEN)) == identity.pin


def test_a_certificate_is_refused_for_another_pin_or_token(tmp_path):
    der = _der(tls.master_identity(str(tmp_path), TOKEN))
    with pytest.raises(errors.AuthenticationFailed, match="not the cluster CA pinned"):
        tls.check(der, tls.Trust(pin="sha256:" + "0" * 64))
    with pytest.raises(errors.AuthenticationFailed, match="node key"):
        tls.check(der, tls.node_trust(OTHER_TOKEN))
    with pytest.raises(errors.AuthenticationFailed, match="none"):
        tls.check(None, tls.Trust(pin="x"))
    with pytest.raises(errors.AuthenticationFailed, match="nothing to check"):
        tls.check(der, tls.Trust())


def test_a_forged_leaf_carrying_the_real_ca_is_refused(tmp_path):
    """An attacker copies the cluster's CA certificate (public) into a leaf it signs itself:
    the pin matches, the signature does not."""
    identity = tls.master_identity(str(tmp_path), TOKEN)
    ca = x509.load_pem_x509_certificate((tmp_path / tls.CA_CERT).read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    forged = (x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject)
              .public_key(key.public_key()).serial_number(1)
              .not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.UnrecognizedExtension(
                  tls.CA_IN_LEAF, ca.public_bytes(serialization.Encoding.DER)), critical=False)
              .sign(key, hashes.SHA256()))
    with pytest.raises(errors.AuthenticationFailed, match="not signed by its CA"):
        tls.check(forged.public_bytes(serialization.Encoding.DER), tls.Trust(pin=identity.pin))
    plain = (x509.CertificateBuilder().subject_name(ca.subject).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(2).not_valid_before(now)
             .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    with pytest.raises(errors.AuthenticationFailed, match="not a DFS cluster certificate"):
        tls.check(plain.public_bytes(serialization.Encoding.DER), tls.Trust(pin=identity.pin))


def test_auto_mode_follows_the_listening_address(monkeypatch):
    monkeypatch.delenv(tls.ENV, raising=False)
    assert not tls.enabled(None, "127.0.0.1")
    assert not tls.enabled(None, "localhost")
    assert not tls.enabled(None, "::1")
    assert tls.enabled(None, "0.0.0.0")
    assert tls.enabled(None, "10.1.2.3")
    assert tls.enabled(None, "dfs-master.example")
    assert tls.enabled(True, "127.0.0.1") and not tls.enabled(False, "10.1.2.3")
    monkeypatch.setenv(tls.ENV, "1")
    assert tls.enabled(None, "127.0.0.1") and not tls.enabled(False, "127.0.0.1")
    monkeypatch.setenv(tls.ENV, "0")
    assert not tls.enabled(None, "10.1.2.3")


def test_auth_file_pins_the_ca_and_old_files_still_read(tmp_path):
    new, old = str(tmp_path / "new.txt"), str(tmp_path / "old.txt")
    auth.write_auth_file(new, [("10.0.0.1", 18861)], "ann", "k" * 64, ca="sha256:ab")
    auth.write_auth_file(old, [("10.0.0.1", 18861)], "ann", "k" * 64)
    try:
        assert auth.read_auth_file(new) == ((("10.0.0.1", 18861),), "ann", "k" * 64)
        assert tls.trust() == tls.Trust(pin="sha256:ab")
        assert auth.read_auth_pin(new) == "sha256:ab"
        assert auth.read_auth_file(old) == ((("10.0.0.1", 18861),), "ann", "k" * 64)
        assert tls.trust() is None and auth.read_auth_pin(old) == ""
    finally:
        tls.use(None)


def _serve_once(identity):
    """A TLS listener presenting ``identity`` to whoever connects; -> its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(identity.cert_file, identity.key_file)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with listener:
            raw, _ = listener.accept()
            try:
                with context.wrap_socket(raw, server_side=True) as sock:
                    sock.recv(1)
            except OSError:
                pass
    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_a_worker_joins_with_the_masters_certificate(tmp_path):
    os.mkdir(tmp_path / "m")
    os.mkdir(tmp_path / "w")
    master = tls.master_identity(str(tmp_path / "m"), TOKEN)
    joined = tls.join_identity(str(tmp_path / "w"), TOKEN, [("127.0.0.1", _serve_once(master))],
                               deadline=5.0)
    assert joined.pin == master.pin
    assert (tmp_path / "w" / tls.NODE_CERT).read_bytes() == (tmp_path / "m" /
                                                              tls.NODE_CERT).read_bytes()
    assert not (tmp_path / "w" / tls.CA_KEY).exists()
    # a restart uses the kept certificate: no master needed
    assert tls.join_identity(str(tmp_path / "w"), TOKEN, [("127.0.0.1", 1)]) == joined


def test_a_worker_refuses_a_master_without_the_join_token(tmp_path):
    os.mkdir(tmp_path / "m")
    os.mkdir(tmp_path / "w")
    impostor = tls.master_identity(str(tmp_path / "m"), OTHER_TOKEN)
    with pytest.raises(errors.AuthenticationFailed, match="node key"):
        tls.join_identity(str(tmp_path / "w"), TOKEN, [("127.0.0.1", _serve_once(impostor))],
                          deadline=5.0)
    assert not (tmp_path / "w" / tls.NODE_CERT).exists()

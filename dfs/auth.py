"""Keys, auth.txt, challenge-response, and chunk tokens.

Challenge-response (SCRAM-like, RFC 5802 in spirit): the master stores only
``stored = sha256(key)``. To log in, the client proves it knows ``key`` by sending
``proof = key XOR HMAC(stored, transcript)``; the master recomputes the HMAC, recovers the
key and checks its hash. The key never crosses the wire and a copy of the master's
metadata is not enough to log in.

Chunk tokens: the master signs ``op:chunk_id:epoch:expiry`` with a secret derived from the
cluster join token, which every worker knows; a worker serves or stores a chunk only
against a valid token for that chunk and op.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from dfs import tls
from dfs.config import Address, format_addresses, parse_addresses
from dfs.errors import AuthenticationFailed, InvalidArgument, StaleToken
from dfs.fsutil import create_dirs, open_private

KEY_BYTES = 32
NONCE_BYTES = 16


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def stored_form(key_hex: str) -> str:
    """What the master keeps of a key: sha256 of its bytes, hex."""
    return hashlib.sha256(_key_bytes(key_hex)).hexdigest()


def _key_bytes(key_hex: str) -> bytes:
    try:
        key = bytes.fromhex(key_hex)
    except (ValueError, TypeError):
        raise AuthenticationFailed("malformed key in auth file") from None
    if len(key) != KEY_BYTES:
        raise AuthenticationFailed("malformed key in auth file")
    return key


def _transcript(name: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return b"dfs-login\0" + name.encode() + b"\0" + server_nonce + client_nonce


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def make_proof(key_hex: str, name: str, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """Client side: the proof that we hold ``key_hex``."""
    key = _key_bytes(key_hex)
    stored = hashlib.sha256(key).digest()
    signature = hmac.new(stored, _transcript(name, server_nonce, client_nonce), "sha256").digest()
    return _xor(key, signature)


def check_proof(stored_hex: str, name: str, server_nonce: bytes, client_nonce: bytes,
                proof: object) -> bool:
    """Master side: True when ``proof`` shows knowledge of the key behind ``stored_hex``."""
    if not isinstance(proof, bytes) or len(proof) != KEY_BYTES:
        return False
    stored = bytes.fromhex(stored_hex)
    signature = hmac.new(stored, _transcript(name, server_nonce, client_nonce), "sha256").digest()
    candidate = _xor(proof, signature)
    return hmac.compare_digest(hashlib.sha256(candidate).digest(), stored)


# --- chunk tokens ---------------------------------------------------------------------

def chunk_secret(join_token: str) -> bytes:
    return hmac.new(join_token.encode(), b"dfs chunk tokens v1", "sha256").digest()


def sign_chunk_token(secret: bytes, op: str, chunk_id: int, epoch: int, ttl: float,
                     now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    body = f"{op}:{chunk_id}:{epoch}:{expires}"
    mac = hmac.new(secret, body.encode(), "sha256").hexdigest()[:32]
    return f"{body}:{mac}"


def verify_chunk_token(secret: bytes, token: object, op: str, chunk_id: int, min_epoch: int,
                       now: float | None = None) -> int:
    """Raise StaleToken unless ``token`` allows ``op`` on ``chunk_id``; returns its epoch."""
    return _check_token(_signed_fields(secret, token), op, chunk_id, min_epoch,
                        now if now is not None else time.time())


TokenFields = tuple[str, str, str, str]
"""A signed token's ``(op, chunk id, epoch, expiry)``, as written in it."""


def _signed_fields(secret: bytes, token: object) -> TokenFields:
    if not isinstance(token, str) or token.count(":") != 4:
        raise StaleToken("malformed chunk token")
    body, _, mac = token.rpartition(":")
    expected = hmac.new(secret, body.encode(), "sha256").hexdigest()[:32]
    if not hmac.compare_digest(mac, expected):
        raise StaleToken("chunk token signature does not match")
    token_op, token_chunk, epoch, expires = body.split(":")
    return token_op, token_chunk, epoch, expires


def _check_token(fields: TokenFields, op: str, chunk_id: int, min_epoch: int,
                 now: float) -> int:
    token_op, token_chunk, epoch, expires = fields
    if token_op != op or token_chunk != str(chunk_id):
        raise StaleToken(f"chunk token is not for {op} of chunk {chunk_id}")
    if int(expires) < now:
        raise StaleToken("chunk token expired")
    if int(epoch) < min_epoch:
        raise StaleToken(f"chunk token from old epoch {epoch} (now {min_epoch})")
    return int(epoch)


VERIFIED_TOKENS = 4096
"""Tokens whose signature a worker remembers: a client sends the same token with every
1 MiB piece of a chunk, and the HMAC of each was 7% of a worker's GIL time in a big write."""


class VerifiedTokens:
    """verify_chunk_token, with the signature checked once per token: a token that passed
    every check is remembered (LRU, at most ``size``; until its expiry, or until the secret
    changes). Op, chunk, expiry and epoch are still checked at every use; a token that
    failed any check is not remembered."""

    def __init__(self, size: int = VERIFIED_TOKENS) -> None:
        self.size = size
        self.secret = b""
        self.signed: OrderedDict[str, TokenFields] = OrderedDict()
        self.lock = threading.Lock()

    def verify(self, secret: bytes, token: object, op: str, chunk_id: int, min_epoch: int,
               now: float | None = None) -> int:
        """As verify_chunk_token."""
        now = now if now is not None else time.time()
        fields = self._lookup(secret, token, now)
        if fields is not None:
            return _check_token(fields, op, chunk_id, min_epoch, now)
        fields = _signed_fields(secret, token)
        epoch = _check_token(fields, op, chunk_id, min_epoch, now)
        with self.lock:
            if secret == self.secret and isinstance(token, str):  # (it is: it was signed)
                self.signed[token] = fields
                if len(self.signed) > self.size:
                    self.signed.popitem(last=False)
        return epoch

    def _lookup(self, secret: bytes, token: object, now: float) -> TokenFields | None:
        if not isinstance(token, str):
            return None
        with self.lock:
            if secret != self.secret:  # a new secret: nothing signed with the old one holds
                self.signed.clear()
                self.secret = secret
                return None
            fields = self.signed.get(token)
            if fields is None:
                return None
            if int(fields[3]) < now:  # expired: forgotten (the check refuses it)
                del self.signed[token]
            else:
                self.signed.move_to_end(token)
            return fields


# --- auth.txt ------------------------------------------------------------------------

def write_auth_file(path: str, masters: Sequence[Address], user: str, key: str,
                    ca: str = "", note: str = "") -> None:
    """Write auth.txt with mode 0600 (created that way, whatever the umask). ``ca``: the
    cluster CA's fingerprint when the cluster uses TLS (dfs.tls), pinned by every client;
    ``note``: a comment line saying where the file came from."""
    create_dirs(os.path.dirname(os.path.abspath(path)))
    text = (
        "# DFS credentials: keep this file private.\n"
        + (f"# {note}\n" if note else "") +
        f"masters = {format_addresses(masters)}\n"
        f"user = {user}\n"
        f"key = {key}\n"
    ) + (f"ca = {ca}\n" if ca else "")
    tmp = f"{path}.tmp{os.getpid()}"
    with open_private(tmp) as f:
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_auth_file(path: str) -> tuple[tuple[Address, ...], str, str]:
    """-> (masters, user, key). A missing or malformed file is a clear error. The file's CA
    pin becomes this process's TLS trust (none, in a file without it: plain TCP)."""
    values = _auth_values(path)
    missing = [k for k in ("masters", "user", "key") if not values.get(k)]
    if missing:
        raise InvalidArgument(f"auth file {path} lacks {', '.join(missing)}")
    pin = values.get("ca", "")
    tls.use(tls.Trust(pin=pin) if pin else None)
    return parse_addresses(values["masters"]), values["user"], values["key"]


def read_auth_pin(path: str) -> str:
    """The CA fingerprint pinned in auth file ``path``; "" when the cluster has no TLS."""
    return _auth_values(path).get("ca", "")


def _auth_values(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise AuthenticationFailed(
            f"no auth file at {path}: run `dfs register NAME` (or `make up`) first") from None
    except OSError as exc:
        raise AuthenticationFailed(f"cannot read auth file {path}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise InvalidArgument(f"malformed line in auth file {path}: {line!r}")
        values[name.strip()] = value.strip()
    return values


# --- calls between metadata servers and voters -------------------------------------------

VOTER_WINDOW = 30.0


def voter_secret(join_token: str) -> bytes:
    return hmac.new(join_token.encode(), b"dfs voters v1", "sha256").digest()


def _voter_body(method: str, args: object, to: str, stamp: float, nonce: str) -> bytes:
    return f"{method}|{args!r}|{to}|{stamp:.6f}|{nonce}".encode()


def sign_voter_call(secret: bytes, method: str, args: object, to: str,
                    now: float | None = None) -> tuple[float, str]:
    """-> (stamp, "nonce:mac") proving a metadata server (it knows the join token) sent this
    call to the node ``to`` (a worker id, or "master"/"shadow"). The random nonce is signed
    too: the receiver accepts each one once (nodes/replay.py), and only if it is ``to``, so
    a captured call cannot be played again, to it or to any other node."""
    stamp = now if now is not None else time.time()
    nonce = secrets.token_hex(NONCE_BYTES)
    mac = hmac.new(secret, _voter_body(method, args, to, stamp, nonce), "sha256").hexdigest()
    return stamp, f"{nonce}:{mac}"


def verify_voter_call(secret: bytes, method: str, args: object, stamp: object, mac: object,
                      me: str, now: float | None = None) -> tuple[float, str]:
    """Check the window and the signature of a call from sign_voter_call, made out to ``me``
    (this node's id). -> (stamp, nonce);
    the caller must still check the nonce is new (nodes.replay.check_signed_call does both)."""
    now = now if now is not None else time.time()
    if not isinstance(stamp, float) or not abs(now - stamp) <= VOTER_WINDOW:  # NaN too
        raise AuthenticationFailed("voter call too old or from a clock far off")
    nonce, _, signature = mac.partition(":") if isinstance(mac, str) else ("", "", "")
    if len(nonce) != 2 * NONCE_BYTES:
        raise AuthenticationFailed("voter call without a nonce")
    expected = hmac.new(secret, _voter_body(method, args, me, stamp, nonce),
                        "sha256").hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):  # any str: no TypeError
        raise AuthenticationFailed("voter call not signed with the cluster's secret")
    return stamp, nonce

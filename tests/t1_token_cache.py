"""auth.VerifiedTokens: a worker's chunk-token check with each token's signature verified
once. Same verdicts as auth.verify_chunk_token at every use (tests/t1_units.py)."""

import pytest

from dfs import auth, errors

SECRET = auth.chunk_secret("ab" * 32)


def test_a_remembered_token_is_still_checked_for_chunk_op_epoch_and_time():
    tokens = auth.VerifiedTokens()
    token = auth.sign_chunk_token(SECRET, "r", 7, epoch=3, ttl=60, now=1000)
    assert tokens.verify(SECRET, token, "r", 7, min_epoch=3, now=1000) == 3
    assert token in tokens.signed
    for op, chunk, min_epoch, now in (("w", 7, 3, 1000), ("r", 8, 3, 1000),
                                      ("r", 7, 4, 1000), ("r", 7, 3, 2000)):
        with pytest.raises(errors.StaleToken):
            tokens.verify(SECRET, token, op, chunk, min_epoch, now)
    assert token not in tokens.signed  # expired at the last use: forgotten


def test_a_token_that_fails_is_not_remembered():
    tokens = auth.VerifiedTokens()
    token = auth.sign_chunk_token(SECRET, "w", 7, epoch=3, ttl=60, now=1000)
    forged = token.replace("w:7", "w:9")
    for bad, chunk in ((forged, 9), ("w:7:3:1060:" + "0" * 32, 7), ("nonsense", 7),
                       (["not", "a", "token"], 7)):
        for _ in range(2):
            with pytest.raises(errors.StaleToken):
                tokens.verify(SECRET, bad, "w", chunk, 3, now=1000)
    with pytest.raises(errors.StaleToken):  # signed, but for another op
        tokens.verify(SECRET, token, "r", 7, 3, now=1000)
    assert not tokens.signed


def test_another_secret_forgets_every_token():
    tokens = auth.VerifiedTokens()
    token = auth.sign_chunk_token(SECRET, "w", 7, epoch=0, ttl=60, now=1000)
    tokens.verify(SECRET, token, "w", 7, 0, now=1000)
    rotated = auth.chunk_secret("cd" * 32)
    with pytest.raises(errors.StaleToken):
        tokens.verify(rotated, token, "w", 7, 0, now=1000)
    assert not tokens.signed
    assert tokens.verify(SECRET, token, "w", 7, 0, now=1000) == 0  # checked afresh
    assert list(tokens.signed) == [token]


def test_at_most_size_tokens_are_remembered_the_least_recently_used_go():
    tokens = auth.VerifiedTokens(size=3)
    signed = [auth.sign_chunk_token(SECRET, "w", n, epoch=0, ttl=60, now=1000)
              for n in range(4)]
    for n in range(3):
        tokens.verify(SECRET, signed[n], "w", n, 0, now=1000)
    tokens.verify(SECRET, signed[0], "w", 0, 0, now=1000)  # used again: kept
    tokens.verify(SECRET, signed[3], "w", 3, 0, now=1000)
    assert list(tokens.signed) == [signed[2], signed[0], signed[3]]

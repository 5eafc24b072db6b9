import os

import pytest
from cryptography.exceptions import InvalidTag

from services.intake.adapters.vault import Contact, Vault
from services.intake.ratelimit import RateLimiter


def test_sealed_contact_opens_only_with_its_own_key_and_ref() -> None:
    vault = Vault(os.urandom(32))
    sealed, wrapped = vault.seal("cp-a", Contact("张三", "13800000000", None))
    assert vault.open("cp-a", sealed, wrapped) == Contact("张三", "13800000000", None)
    assert "张三".encode() not in sealed
    with pytest.raises(InvalidTag):
        vault.open("cp-b", sealed, wrapped)  # bound to its ref: cannot be moved to another row
    with pytest.raises(InvalidTag):
        Vault(os.urandom(32)).open("cp-a", sealed, wrapped)  # another master key cannot unwrap it
    _, other_wrapped = vault.seal("cp-a", Contact("李四", None, None))
    with pytest.raises(InvalidTag):
        vault.open("cp-a", sealed, other_wrapped)  # each complainant's data has its own key


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Vault(b"short")


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(burst_seconds=10)
    results = [limiter.allow("a", 60, now=0.0) for _ in range(11)]  # 1/s, burst of 10
    assert results[:10] == [0.0] * 10 and results[10] == pytest.approx(1.0)
    assert limiter.allow("a", 60, now=1.0) == 0.0
    assert limiter.allow("b", 60, now=1.0) == 0.0  # agencies do not share a bucket
    assert limiter.allow("c", 0, now=0.0) == 60.0

"""The hand-made static ABI encodings of task ids, result hashes and seals equal eth_abi's
(and the contracts', which the e2e tests settle with), for any input, and refuse what
eth_abi refuses."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.chain.types import result_hash, result_seal, task_id

words = st.binary(min_size=0, max_size=32)
addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))


@settings(max_examples=300, deadline=None)
@given(deal=words, index=st.integers(min_value=0, max_value=2**256 - 1))
def test_task_id_equals_the_abi_encoding(deal: bytes, index: int) -> None:
    assert task_id(deal, index) == keccak(abi_encode(["bytes32", "uint256"], [deal, index]))


@settings(max_examples=300, deadline=None)
@given(worker=addresses, task=words, digest=words)
def test_hash_and_seal_equal_the_abi_encoding(worker: str, task: bytes, digest: bytes) -> None:
    assert result_hash(task, digest) == keccak(abi_encode(["bytes32", "bytes32"], [task, digest]))
    assert result_seal(worker, task, digest) == keccak(
        abi_encode(["address", "bytes32", "bytes32"], [worker, task, digest])
    )
    assert result_seal(worker.lower(), task, digest) == result_seal(worker, task, digest)


def test_what_does_not_fit_the_types_is_refused() -> None:
    with pytest.raises(ValueError):
        result_hash(b"\x01" * 33, b"")
    with pytest.raises(ValueError):
        result_seal("0x" + "ab" * 19, b"", b"")  # 19 bytes
    with pytest.raises(ValueError):
        task_id(b"", -1)
    with pytest.raises(ValueError):
        task_id(b"", 2**256)
    with pytest.raises(ValueError):
        result_hash("ab" * 16, b"")  # type: ignore[arg-type]  # text, not bytes

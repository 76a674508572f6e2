"""Deterministic test records shared by the client tests: keys (some null), values (some
empty, some null), and headers (repeated keys, empty and null values)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

WORDS = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]


@dataclass(frozen=True)
class Sent:
    index: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple  # ((str, bytes | None), ...)


def make_records(n: int, source: str, seed: int, null_header_values: bool = True,
                 null_key_and_value: bool = True) -> list[Sent]:
    """kafka-python refuses null header values and records with neither key nor value;
    the two flags leave those out."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = None if i % 13 == 0 else f"key-{rng.randrange(500)}".encode()
        if i % 17 == 0:
            value = b""
        elif i % 19 == 0:
            value = None
        else:
            # Compressible but not constant: words plus the index.
            value = b"%d:" % i + b" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30)))
        if key is None and value is None and not null_key_and_value:
            value = b""
        headers = [("idx", str(i).encode()), ("src", source.encode())]
        if i % 7 == 0:
            headers += [("dup", b"1"), ("dup", b"2"), ("empty", b"")]
        if null_header_values and i % 11 == 0:
            headers.append(("null", None))
        out.append(Sent(i, key, value, tuple(headers)))
    return out


def expected_by_partition(sent: list[Sent], delivered: dict[int, tuple[int, int]]) -> dict[int, list[tuple[int, Sent]]]:
    """Per partition, the acknowledged records as (offset, record) in offset order; asserts
    offsets are 0..n-1 and that offset order is send order (per-partition order)."""
    assert len(delivered) == len(sent), f"{len(sent) - len(delivered)} records not acknowledged"
    parts: dict[int, list[tuple[int, Sent]]] = {}
    for s in sent:
        p, off = delivered[s.index]
        parts.setdefault(p, []).append((off, s))
    for p, recs in parts.items():
        offsets = [off for off, _ in recs]  # in send order
        assert offsets == list(range(len(recs))), (
            f"partition {p}: acknowledged offsets in send order are not 0..{len(recs) - 1}: "
            f"first mismatch at {next(i for i, o in enumerate(offsets) if o != i)}"
        )
    return parts


def assert_consumed_equal(expected: dict[int, list[tuple[int, Sent]]], consumed: dict[int, list]) -> None:
    """`consumed[p]` holds (offset, key, value, headers) read back from partition p."""
    assert set(consumed) >= set(expected)
    for p, recs in expected.items():
        got = consumed[p]
        assert len(got) == len(recs), f"partition {p}: read {len(got)} records, expected {len(recs)}"
        for (off, s), (g_off, g_key, g_value, g_headers) in zip(recs, got):
            assert g_off == off, f"partition {p}: offset {g_off} where {off} was expected"
            assert g_key == s.key, f"partition {p} offset {off}: key {g_key!r} != {s.key!r}"
            assert g_value == s.value, f"partition {p} offset {off}: value {g_value!r} != {s.value!r}"
            assert tuple(g_headers) == s.headers, (
                f"partition {p} offset {off}: headers {g_headers!r} != {s.headers!r}"
            )
    for p in set(consumed) - set(expected):
        assert not consumed[p], f"partition {p} holds records nobody sent"


def assert_compressed(batches: list[dict], codec: str, client: str) -> None:
    """Every stored batch (`strata log dump --json` rows) uses `codec`, except lone small
    batches the client sent uncompressed because compression would not shrink them
    (librdkafka and kafka-python both do that)."""
    plain = [b for b in batches if b["compression"] != codec]
    assert all(b["compression"] == "none" and b["records"] < 10 for b in plain), (
        f"asked {client} for {codec}; {len(plain)} of {len(batches)} stored batches are not "
        f"{codec}: {[(b['compression'], b['records']) for b in plain[:10]]}"
    )
    assert len(plain) * 10 <= len(batches), (
        f"asked {client} for {codec}; {len(plain)} of {len(batches)} stored batches are uncompressed"
    )

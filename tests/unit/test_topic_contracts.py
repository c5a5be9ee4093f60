"""Every example payload of every topic decodes, and every consumer of that topic accepts it."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models.events import DecodeError
from models.topics import TOPICS, TopicSpec
from streams.ledger import JournalEntry

REPO = Path(__file__).resolve().parents[2]


def _consumer(dotted: str) -> Callable[[Any], Any]:
    module, _, name = dotted.rpartition(".")
    fn: Callable[[Any], Any] = getattr(importlib.import_module(module), name)
    return fn


CASES = [(spec, path) for spec in TOPICS for path in spec.examples()]


@pytest.mark.parametrize(("spec", "path"), CASES, ids=[f"{s.name}/{p.name}" for s, p in CASES])
def test_example_decodes_and_every_consumer_accepts_it(spec: TopicSpec, path: Path) -> None:
    event = spec.decode(path.read_bytes())
    for dotted in spec.consumers:
        out = _consumer(dotted)(event)
        if isinstance(out, JournalEntry):
            assert sum(p.amount_minor for p in out.postings) == 0
        if out is not None:  # every consumer's output belongs to the event's payment
            assert out.payment_id == event.model_dump()["payment_id"]


@pytest.mark.parametrize("spec", TOPICS, ids=[s.name for s in TOPICS])
def test_every_schema_of_a_topic_has_an_example(spec: TopicSpec) -> None:
    covered = {spec.decode(p.read_bytes()).__class__ for p in spec.examples()}
    assert covered == set(spec.schemas)


def test_topic_names_are_unique_and_consumers_resolve() -> None:
    assert len({t.name for t in TOPICS}) == len(TOPICS)
    for spec in TOPICS:
        for dotted in spec.consumers:
            assert callable(_consumer(dotted))


def test_no_topic_name_literal_outside_the_registry() -> None:
    names = [t.name for t in TOPICS]
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    offenders = []
    for folder in ("api", "streams", "fraud", "warehouse", "dashboards", "deploy", "cli"):
        for path in (REPO / folder).rglob("*.py"):
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "schema_mismatch"),
        (b'{"event_type": "payment.requested", "schema_version": 9}', "unsupported_schema_version"),
        (b'{"event_type": "payment.teleported", "schema_version": 1}', "unknown_event_type"),
        (b'{"event_type": "payment.requested", "schema_version": 1}', "schema_mismatch"),
    ],
)
def test_undecodable_bytes_raise_a_stable_code(raw: bytes, code: str) -> None:
    requested = next(t for t in TOPICS if t.name == "payments.requested")
    with pytest.raises(DecodeError) as info:
        requested.decode(raw)
    assert info.value.code == code


def test_an_example_with_a_float_amount_is_refused() -> None:
    requested = next(t for t in TOPICS if t.name == "payments.requested")
    raw = requested.examples()[0].read_text().replace('"minor": ', '"minor": 0.5 + ', 1)
    raw = re.sub(r'"minor": 0\.5 \+ (\d+)', r'"minor": \1.5', raw)
    with pytest.raises(DecodeError) as info:
        requested.decode(raw.encode())
    assert info.value.code == "schema_mismatch"

"""Delivery logic at our own seams: answers classified, records round-trip, the hot lane, the retry lane's order gate."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gitops_mesh.bus.consumer import RecordMeta
from gitops_mesh.bus.envelope import parse_event
from gitops_mesh.errors import BusUnavailable
from notification_controller.delivery import DeliverySettings, Dispatcher, RetryGate, backoff
from notification_controller.providers import Request
from notification_controller.providers.slack import check_web_api
from notification_controller.records import Delivery, RecordError, from_record, to_record
from notification_controller.sending import Attempt, AttemptKind, classify
from tests.unit.notification.support import make_event

REQ = Request(url="https://hooks.example.com/secret/path", body=b"{}", headers={})


# ---- classification ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (200, AttemptKind.DELIVERED, "Delivered"),
        (204, AttemptKind.DELIVERED, "Delivered"),
        (408, AttemptKind.RETRY, "HTTP408"),
        (429, AttemptKind.RETRY, "HTTP429"),
        (500, AttemptKind.RETRY, "HTTP500"),
        (503, AttemptKind.RETRY, "HTTP503"),
        (400, AttemptKind.REJECTED, "HTTP400"),
        (401, AttemptKind.REJECTED, "HTTP401"),
        (404, AttemptKind.REJECTED, "HTTP404"),
        (410, AttemptKind.REJECTED, "HTTP410"),
        (302, AttemptKind.REJECTED, "HTTP302"),
    ],
)
def test_classify_status(status: int, outcome: AttemptKind, reason: str) -> None:
    attempt = classify(REQ, status, {}, b"boom")
    assert attempt.kind is outcome
    assert attempt.reason == reason
    if outcome is not AttemptKind.DELIVERED:
        assert "secret" not in attempt.detail
        assert "boom" in attempt.detail


def test_classify_reads_retry_after_and_api_bodies() -> None:
    assert classify(REQ, 429, {"Retry-After": "7"}, b"").retry_after == 7.0
    slack = Request(url=REQ.url, body=b"{}", headers={}, check_body=check_web_api)
    assert classify(slack, 200, {}, b'{"ok": true}').kind is AttemptKind.DELIVERED
    refused = classify(slack, 200, {}, b'{"ok": false, "error": "invalid_auth"}')
    assert (refused.kind, refused.reason) == (AttemptKind.REJECTED, "RejectedByAPI")
    limited = classify(slack, 200, {"Retry-After": "3"}, b'{"ok": false, "error": "ratelimited"}')
    assert (limited.kind, limited.retry_after) == (AttemptKind.RETRY, 3.0)


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    s = DeliverySettings(initial_backoff=1, max_backoff=10)
    assert 0.8 <= backoff(s, 1, None) <= 1.0
    assert 3.2 <= backoff(s, 3, None) <= 4.0
    assert 8.0 <= backoff(s, 30, None) <= 10.0
    assert backoff(s, 1, 5) == 5
    assert backoff(s, 1, 3600) == 10


# ---- records -------------------------------------------------------------------------------------------


def test_record_round_trip_keeps_the_event_and_the_bookkeeping() -> None:
    event = make_event(metadata={"seq": "1"}, revision="main@sha1:abc")
    d = Delivery(
        event, "apps/a", "apps/p", attempts=3, first_failure=1.5, last_error="HTTP503: x", not_before=9.25, seq=7
    )
    key, value = to_record(d)
    assert key == b"apps/p|Kustomization/apps/podinfo"
    back = from_record(parse_event(value))
    assert back == d
    assert back.event.metadata == {"seq": "1"}
    assert back.id == f"{event.id}/apps/a"
    with pytest.raises(RecordError):
        from_record(event)


# ---- the dispatcher ------------------------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_000_000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeResolver:
    """Answers from a script per delivery id (the last answer repeats); records the order of attempts."""

    script: dict[str, list[Attempt]] = field(default_factory=dict)
    tried: list[str] = field(default_factory=list)

    async def resolve(self, d: Delivery) -> Request | Attempt:
        self.tried.append(d.event.message)
        answers = self.script.get(d.event.message, [Attempt.delivered(200)])
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def provider_type(self, d: Delivery) -> str:
        return "generic"


class NeverSend:
    async def send(self, request: Request) -> Attempt:
        raise AssertionError("the fake resolver answers every attempt")


@dataclass
class FakeParking:
    retries: list[Delivery] = field(default_factory=list)
    dead: list[tuple[Delivery, str]] = field(default_factory=list)
    down: bool = False

    async def retry_later(self, d: Delivery) -> None:
        if self.down:
            raise BusUnavailable("kafka down")
        self.retries.append(d)

    async def dead_letter(self, d: Delivery, *, reason: str, detail: str, source_topic: str) -> None:
        if self.down:
            raise BusUnavailable("kafka down")
        self.dead.append((d, reason))


@dataclass
class FakeReporter:
    parked_reasons: list[str] = field(default_factory=list)

    async def parked(self, d: Delivery, reason: str, message: str) -> None:
        self.parked_reasons.append(reason)


@dataclass
class Rig:
    dispatcher: Dispatcher
    resolver: FakeResolver
    parking: FakeParking
    reporter: FakeReporter
    clock: Clock


@pytest.fixture
def rig() -> Rig:
    clock = Clock()
    resolver, parking, reporter = FakeResolver(), FakeParking(), FakeReporter()
    dispatcher = Dispatcher(
        resolver=resolver,
        sender=NeverSend(),
        parking=parking,
        reporter=reporter,
        settings=DeliverySettings(hold=10, budget=100, initial_backoff=1, max_backoff=8),
        clock=clock,
        monotonic=clock,
        sleep=clock.sleep,
    )
    return Rig(dispatcher, resolver, parking, reporter, clock)


def delivery(message: str, *, event_id: str | None = None, provider: str = "apps/p") -> Delivery:
    event = make_event(message=message, event_id=event_id or f"id-{message}")
    return Delivery(event, "apps/a", provider)


RETRY = Attempt.retry("HTTP503", "down")
OK = Attempt.delivered(200)


async def test_hot_lane_delivers_and_does_not_resend_a_settled_delivery(rig: Rig) -> None:
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    assert rig.resolver.tried == ["m1"]


async def test_hot_lane_retries_with_backoff_within_the_hold(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY, Attempt.retry("HTTP429", "slow", retry_after=3), OK]
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    assert rig.resolver.tried == ["m1"] * 3
    assert 0.8 <= rig.clock.slept[0] <= 1.0
    assert rig.clock.slept[1] == 3
    assert rig.parking.retries == []


async def test_hot_lane_hands_over_after_the_hold_and_then_gates_the_key(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY]
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    assert len(rig.resolver.tried) >= 3
    [handed] = rig.parking.retries
    assert handed.attempts == len(rig.resolver.tried)
    assert handed.first_failure is not None
    assert handed.not_before > rig.clock.now
    assert rig.dispatcher.gate.blocked(handed.order_key)
    tried = len(rig.resolver.tried)
    # The provider is failing and the key is gated: the next delivery goes to the retry lane untried.
    await rig.dispatcher.deliver([delivery("m2")], source_topic="t")
    assert len(rig.resolver.tried) == tried
    assert [d.event.message for d in rig.parking.retries] == ["m1", "m2"]
    assert rig.parking.retries[1].seq > rig.parking.retries[0].seq


async def test_a_failing_provider_does_not_gate_another_provider(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY]
    await rig.dispatcher.deliver([delivery("m1"), delivery("m2", provider="apps/q")], source_topic="t")
    assert [d.event.message for d in rig.parking.retries] == ["m1"]
    assert "m2" in rig.resolver.tried


async def test_rejections_are_parked_and_reported(rig: Rig) -> None:
    rig.resolver.script["m1"] = [Attempt.rejected("HTTP400", "bad request", 400)]
    rig.resolver.script["m2"] = [Attempt.skipped("suspended")]
    await rig.dispatcher.deliver([delivery("m1"), delivery("m2")], source_topic="t")
    assert [(d.event.message, reason) for d, reason in rig.parking.dead] == [("m1", "HTTP400")]
    assert rig.reporter.parked_reasons == ["HTTP400"]
    assert rig.resolver.tried.count("m1") == 1


async def test_kafka_down_fails_the_event_but_keeps_what_settled(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY]
    rig.parking.down = True
    with pytest.raises(BusUnavailable):
        await rig.dispatcher.deliver([delivery("m1"), delivery("m2", provider="apps/q")], source_topic="t")
    assert not rig.dispatcher.gate.blocked(delivery("m1").order_key)
    rig.parking.down = False
    rig.resolver.tried.clear()
    rig.dispatcher.health.record("apps/p", OK)
    await rig.dispatcher.deliver([delivery("m1"), delivery("m2", provider="apps/q")], source_topic="t")
    assert "m2" not in rig.resolver.tried


def meta() -> RecordMeta:
    return RecordMeta(topic="prefix.notification-retries", partition=0, offset=0, key=None, timestamp_ms=0)


async def test_retry_lane_attempts_when_due_and_settles(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY]
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    handed = rig.parking.retries.pop()
    rig.resolver.script["m1"] = [OK]
    before = rig.clock.now
    await rig.dispatcher.retry(parse_event(to_record(handed)[1]), meta())
    assert rig.clock.now >= handed.not_before > before
    assert not rig.dispatcher.gate.blocked(handed.order_key)
    assert rig.parking.retries == []


async def test_retry_lane_republishes_with_backoff_then_parks_when_the_budget_is_spent(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY]
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    d = rig.parking.retries.pop()
    while not rig.parking.dead:
        await rig.dispatcher.retry(parse_event(to_record(d)[1]), meta())
        if rig.parking.retries:
            nxt = rig.parking.retries.pop()
            assert nxt.attempts == d.attempts + 1
            assert nxt.seq == d.seq
            d = nxt
    [(parked, reason)] = rig.parking.dead
    assert reason == "RetryBudgetExhausted"
    assert rig.clock.now - (parked.first_failure or 0) >= 100
    assert not rig.dispatcher.gate.blocked(parked.order_key)


async def test_retry_lane_keeps_order_per_key(rig: Rig) -> None:
    rig.resolver.script["m1"] = [RETRY]
    await rig.dispatcher.deliver([delivery("m1")], source_topic="t")
    await rig.dispatcher.deliver([delivery("m2")], source_topic="t")
    first, second = rig.parking.retries
    rig.parking.retries.clear()
    rig.resolver.tried.clear()
    rig.resolver.script["m1"] = [RETRY, OK]
    # The younger delivery comes first on the topic (its due time is earlier): it goes behind the head.
    await rig.dispatcher.retry(parse_event(to_record(second)[1]), meta())
    assert rig.resolver.tried == []
    [behind] = rig.parking.retries
    assert behind.seq == second.seq
    assert behind.not_before >= first.not_before
    rig.parking.retries.clear()
    # The head fails once more and is re-published; then it is delivered, then the younger one.
    await rig.dispatcher.retry(parse_event(to_record(first)[1]), meta())
    [again] = rig.parking.retries
    rig.parking.retries.clear()
    await rig.dispatcher.retry(parse_event(to_record(behind)[1]), meta())
    assert rig.resolver.tried == ["m1"]
    [behind2] = rig.parking.retries
    rig.parking.retries.clear()
    await rig.dispatcher.retry(parse_event(to_record(again)[1]), meta())
    await rig.dispatcher.retry(parse_event(to_record(behind2)[1]), meta())
    assert rig.resolver.tried == ["m1", "m1", "m2"]
    assert not rig.dispatcher.gate.blocked(first.order_key)


def test_gate_drops_stale_entries() -> None:
    clock = Clock()
    gate = RetryGate(stale_after=60, clock=clock)
    gate.add("k", 1, clock.now + 10)
    assert gate.blocked("k")
    clock.now += 71
    assert not gate.blocked("k")
    assert gate.size == 0

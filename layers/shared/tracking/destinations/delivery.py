"""The delivery of a batch of queue messages, each one message for one destination.

Each destination's messages are sent in a thread of their own, so a slow or failing destination
never holds back another. Before a message is sent its marker is claimed (``DeliveryStore.claim``):
a message delivered already is acknowledged without sending, and one that another delivery is
sending waits. Then:

- a ``webhook`` gets one signed POST per message, the batch's messages side by side, each over a
  kept connection of its own (a silent webhook holds its batch for one timeout, not twenty);
- a ``segment`` destination gets ``POST {url}/v1/batch`` with up to 100 messages (never a delete
  message: those are for webhooks).

A 2xx is delivered (marked, never sent again). 408, 429, 5xx and no answer are retried: the message
comes back after an exponential backoff (first within 30 s, then doubling to an hour, at least a
429's ``Retry-After``) for ``max_age_s`` from when it was queued; any other answer, an address that
is refused, or the end of that time puts it in the destination's failures. The verdict of each
message tells the queue what to do: acknowledge it, or show it again after so many seconds."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracking.destinations.addresses import AddressRefused, Resolver, Target, resolve, target
from tracking.destinations.messages import SEGMENT_BATCH_MAX, segment_request, webhook_request
from tracking.destinations.models import Claim, Counts, Destination, DestinationRef, Failure, tallies
from tracking.destinations.router import Destinations
from tracking.destinations.sender import Outcome
from tracking.keys import replay_marker

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 30
LONGEST_RETRY_S = 3600
BUSY_RETRY_S = 30  # another delivery holds the message's lease: look again after this
SENDS_AT_ONCE = 32  # a container's webhook requests in flight at once (a batch's 20, several destinations)
DESTINATIONS_AT_ONCE = 20  # a batch's destinations sent side by side: all of a batch of 20
QUEUE_MAX_DELAY_S = 43_200  # SQS's longest visibility timeout


@dataclass(frozen=True, slots=True)
class Envelope:
    """A queue message as the delivery reads it: its id, how often it was received, and its body
    (``plugin_id``, ``destination_id``, ``message``, ``queued_at``)."""

    id: str
    receive_count: int
    body: dict[str, Any]

    @property
    def ref(self) -> DestinationRef:
        return DestinationRef(str(self.body["plugin_id"]), str(self.body["destination_id"]))

    @property
    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = self.body["message"]
        return message

    @property
    def message_id(self) -> str:
        return str(self.message["messageId"])

    @property
    def replay_id(self) -> str | None:
        replay = self.body.get("replay_id")
        return None if replay is None else str(replay)

    @property
    def marker(self) -> str:
        """Whose marker the message's delivery claims: its own, or, replayed, its own in that replay."""
        replay = self.replay_id
        return self.message_id if replay is None else replay_marker(self.message_id, replay)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the queue does with a message: acknowledge it (``retry_in_s`` None), or show it again."""

    retry_in_s: int | None = None


ACK = Verdict()


class Outbox(Protocol):
    def forgotten(self, plugin_id: str, ids: Sequence[str]) -> dict[str, int]: ...
    def claim(self, ref: DestinationRef, message_id: str, now_ms: int) -> Claim: ...
    def mark_delivered(self, ref: DestinationRef, message_ids: Sequence[str], now_ms: int) -> None: ...
    def release(self, ref: DestinationRef, message_ids: Sequence[str]) -> None: ...
    def add_failures(self, ref: DestinationRef, failures: Sequence[Failure]) -> None: ...
    def count(self, ref: DestinationRef, counts: Counts) -> None: ...


class ReplayCounter(Protocol):
    def settle(
        self, ref: DestinationRef, replay_id: str, *, sent: int, failed: int, skipped: int
    ) -> None: ...


class Post(Protocol):
    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> Outcome: ...


def backoff_s(
    attempt: int, retry_after_s: float | None = None, jitter: float = 1.0, first_s: int = FIRST_RETRY_S
) -> int:
    """The wait before attempt ``attempt + 1``: ``first_s`` (30 s), doubling to an hour, less up to a
    fifth of jitter (``jitter`` in [0.8, 1]); never less than the destination's ``Retry-After``."""
    wait = min(first_s * 2 ** max(0, attempt - 1), LONGEST_RETRY_S) * jitter
    return int(min(max(wait, retry_after_s or 0, 1), QUEUE_MAX_DELAY_S))


@dataclass
class _Run:
    """One destination's part of a batch, and what became of each message."""

    destination: Destination
    envelopes: list[Envelope]
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    dropped: int = 0
    # What became of each replayed message (by queue message id): sent, failed or skipped.
    replayed: dict[str, str] = field(default_factory=dict)
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # a webhook's sends run side by side


class Delivery:
    def __init__(
        self,
        destinations: Destinations,
        outbox: Outbox,
        sender: Post,
        clock_ms: Callable[[], int],
        *,
        max_age_s: int,
        first_retry_s: int = FIRST_RETRY_S,
        allow_local: bool = False,
        resolver: Resolver = resolve,
        workers: int = DESTINATIONS_AT_ONCE,
        replays: ReplayCounter | None = None,
    ) -> None:
        self._destinations = destinations
        self._outbox = outbox
        self._sender = sender
        self._clock = clock_ms
        self._max_age_ms = max_age_s * 1000
        self._first_retry_s = first_retry_s
        self._allow_local = allow_local
        self._resolver = resolver
        self._workers = workers
        self._replays = replays
        self._pool: ThreadPoolExecutor | None = None
        # A webhook's messages of a batch, each on a connection of its own (started on first use).
        self._sends = ThreadPoolExecutor(max_workers=SENDS_AT_ONCE, thread_name_prefix="send")

    def deliver(self, envelopes: Sequence[Envelope]) -> dict[str, Verdict]:
        """Every message's verdict, by queue message id."""
        groups: dict[DestinationRef, list[Envelope]] = {}
        for envelope in envelopes:
            groups.setdefault(envelope.ref, []).append(envelope)
        verdicts: dict[str, Verdict] = {}
        if len(groups) == 1:
            return self._one_destination(next(iter(groups.items())))
        if self._pool is None:  # started on the first batch of several destinations
            self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="deliver")
        for found in self._pool.map(self._one_destination, list(groups.items())):
            verdicts.update(found)
        return verdicts

    def _one_destination(self, group: tuple[DestinationRef, list[Envelope]]) -> dict[str, Verdict]:
        ref, envelopes = group
        try:
            destination = self._destinations.destination(ref)
            if destination is None or not destination.config.enabled:
                # Removed or disabled since it was queued: nothing more is sent to it.
                self._outbox.count(ref, Counts(pending=-len(envelopes)))
                skipped = {envelope.id: "skipped" for envelope in envelopes if envelope.replay_id}
                self._count_replays(ref, envelopes, skipped)
                return {envelope.id: ACK for envelope in envelopes}
        except Exception:  # storage unavailable: every message comes back later
            logger.exception("destination not read", extra={"destination": ref.destination_id})
            return {envelope.id: Verdict(self._first_retry_s) for envelope in envelopes}
        run = _Run(destination, envelopes)
        try:
            self._send(run)
        except Exception:  # storage unavailable midway: what was not settled comes back later
            logger.exception("delivery interrupted", extra={"destination": ref.destination_id})
        self._settle(run)
        return run.verdicts

    def _send(self, run: _Run) -> None:
        config = run.destination.config
        url = config.url.rstrip("/") + "/v1/batch" if config.type == "segment" else config.url
        try:
            where = target(url, allow_local=self._allow_local, resolver=self._resolver)
        except AddressRefused as refused:
            for envelope in run.envelopes:
                self._fail(run, envelope, Outcome("failed", None, f"address refused: {refused}"))
            return
        webhook = config.type == "webhook"
        forgotten = self._outbox.forgotten(
            run.destination.plugin_id, [i for e in run.envelopes for i in _ids(e)]
        )
        wanted: list[Envelope] = []
        for envelope in run.envelopes:
            deletion = envelope.message.get("type") == "delete"
            if (deletion and not webhook) or (not deletion and _of_forgotten(envelope, forgotten)):
                # A delete message is for webhooks; nothing of a forgotten person is sent any more.
                run.verdicts[envelope.id] = ACK
                run.dropped += 1
                if envelope.replay_id:
                    run.replayed[envelope.id] = "skipped"
            else:
                wanted.append(envelope)
        size = 1 if webhook else SEGMENT_BATCH_MAX
        chunks = [wanted[start : start + size] for start in range(0, len(wanted), size)]
        if len(chunks) > 1 and webhook:  # a webhook's messages side by side, each on its own connection
            sent = list(self._sends.map(lambda chunk: self._send_chunk(run, where, chunk), chunks))
        else:
            sent = [self._send_chunk(run, where, chunk) for chunk in chunks]
        # What was sent, settled in one write each way: the delivered marked (never sent again), the
        # others' leases given back.
        answered = [(claimed, outcome) for claimed, outcome in sent if isinstance(outcome, Outcome)]
        self._outcomes(run, answered)
        for _, outcome in sent:
            if isinstance(outcome, Exception):
                raise outcome

    def _send_chunk(
        self, run: _Run, where: Target, chunk: list[Envelope]
    ) -> tuple[list[Envelope], Outcome | Exception | None]:
        """Claim and send one webhook message, or one Segment batch: what was claimed, and the answer
        (an error of storage midway is returned: what was not sent comes back later)."""
        claimed: list[Envelope] = []
        try:
            claimed = self._claimed(run, chunk)
            if not claimed:
                return claimed, None
            config = run.destination.config
            messages = [envelope.message for envelope in claimed]
            if config.type == "webhook":
                body, headers = webhook_request(config.credential, messages[0])
            else:
                body, headers = segment_request(config.credential, messages)
            return claimed, self._sender.post(where, body, headers)
        except Exception as exc:
            return [], exc

    def _claimed(self, run: _Run, envelopes: list[Envelope]) -> list[Envelope]:
        """The messages this delivery may send now: each one's lease taken just before its send. One
        delivered already is acknowledged; one another delivery is sending comes back later."""
        now = self._clock()
        claimed: list[Envelope] = []
        for envelope in envelopes:
            try:
                claim = self._outbox.claim(run.destination.ref, envelope.marker, now)
            except Exception:  # storage down midway: the leases taken go back (else held 60 s)
                if claimed:
                    self._release_quietly(run, claimed)
                raise
            with run.lock:
                if claim == "delivered":
                    run.verdicts[envelope.id] = ACK
                    run.dropped += 1
                elif claim == "busy":
                    run.verdicts[envelope.id] = Verdict(min(BUSY_RETRY_S, self._first_retry_s))
                else:
                    claimed.append(envelope)
        return claimed

    def _release_quietly(self, run: _Run, envelopes: list[Envelope]) -> None:
        try:
            self._outbox.release(run.destination.ref, [e.marker for e in envelopes])
        except Exception:  # they are free again when their lease ends
            logger.warning("leases not given back", extra={"destination": run.destination.destination_id})

    def _outcomes(self, run: _Run, answered: list[tuple[list[Envelope], Outcome]]) -> None:
        """Settle the batch's sends: the delivered are marked before anything else happens (an
        acknowledged message is never sent again); the others give their leases back."""
        delivered = [e for claimed, outcome in answered if outcome.verdict == "delivered" for e in claimed]
        if delivered:
            self._outbox.mark_delivered(run.destination.ref, [e.marker for e in delivered], self._clock())
            run.delivered.extend(e.message_id for e in delivered)
            run.verdicts.update({e.id: ACK for e in delivered})
            run.replayed.update({e.id: "sent" for e in delivered if e.replay_id})
        others = [(claimed, outcome) for claimed, outcome in answered if outcome.verdict != "delivered"]
        if others:
            self._outbox.release(run.destination.ref, [e.marker for claimed, _ in others for e in claimed])
        for claimed, outcome in others:
            for envelope in claimed:
                self._outcome(run, envelope, outcome)

    def _outcome(self, run: _Run, envelope: Envelope, outcome: Outcome) -> None:
        """A message not delivered: its backoff, or its failure (after the sends: one thread)."""
        run.last_error = outcome.error
        if outcome.verdict == "retry":
            jitter = random.uniform(0.8, 1.0)  # noqa: S311 - a spread, not a secret
            wait = backoff_s(envelope.receive_count, outcome.retry_after_s, jitter, self._first_retry_s)
            queued_at = int(envelope.body.get("queued_at", 0))
            if self._clock() + wait * 1000 - queued_at <= self._max_age_ms:
                run.verdicts[envelope.id] = Verdict(wait)
                return
        self._fail(run, envelope, outcome)

    def _fail(self, run: _Run, envelope: Envelope, outcome: Outcome) -> None:
        """A message put in the failures (after the sends, or instead of them: one thread)."""
        error = outcome.error or "not delivered"
        run.last_error = error
        run.failures.append(
            Failure(
                envelope.message_id,
                envelope.receive_count,
                outcome.status,
                error,
                self._clock(),
                envelope.body,
            )
        )
        run.verdicts[envelope.id] = ACK
        if envelope.replay_id:
            run.replayed[envelope.id] = "failed"

    def _settle(self, run: _Run) -> None:
        """Write the failures and the counts. A message whose verdict is missing (an error midway)
        comes back after the first backoff; if the failures cannot be written, so do they."""
        ref = run.destination.ref
        now = self._clock()
        for envelope in run.envelopes:
            run.verdicts.setdefault(envelope.id, Verdict(self._first_retry_s))
        if run.failures:
            try:
                self._outbox.add_failures(ref, run.failures)
            except Exception:
                logger.exception("failures not recorded", extra={"destination": ref.destination_id})
                failed = {failure.message_id for failure in run.failures}
                for envelope in run.envelopes:
                    if envelope.message_id in failed:
                        run.verdicts[envelope.id] = Verdict(self._first_retry_s)
                        run.replayed.pop(envelope.id, None)
                run.failures = []
        self._count_replays(ref, run.envelopes, run.replayed)
        settled = len(run.delivered) + len(run.failures) + run.dropped
        if not (settled or run.last_error):
            return
        try:
            self._outbox.count(
                ref,
                Counts(
                    delivered=len(run.delivered),
                    failed=len(run.failures),
                    pending=-settled,
                    last_delivered_at=now if run.delivered else None,
                    last_error=run.last_error,
                    last_error_at=now if run.last_error else None,
                ),
            )
        except Exception:  # the counters are a view: a lost update does not resend anything
            logger.exception("delivery counters not written", extra={"destination": ref.destination_id})
        if run.failures:
            logger.warning(
                "messages not delivered",
                extra={
                    "destination": ref.destination_id,
                    "count": len(run.failures),
                    "error": run.last_error,
                },
            )

    def _count_replays(
        self, ref: DestinationRef, envelopes: Sequence[Envelope], replayed: dict[str, str]
    ) -> None:
        """Add what became of the batch's replayed messages to their replays' counters (a copy of one
        delivered already, acknowledged without a send, is not counted again)."""
        if self._replays is None or not replayed:
            return
        for replay_id, tally in tallies((e.replay_id, replayed.get(e.id)) for e in envelopes).items():
            try:
                self._replays.settle(ref, replay_id, **tally)
            except Exception:  # a view: the messages were settled all the same
                logger.exception("replay counters not written", extra={"replay_id": replay_id})


def _ids(envelope: Envelope) -> list[str]:
    message = envelope.message
    return [str(i) for i in (message.get("userId"), message.get("anonymousId")) if i]


def _of_forgotten(envelope: Envelope, forgotten: dict[str, int]) -> bool:
    """An event of a person forgotten after it was stored (a message without its stored time: any)."""
    stored = int(envelope.body.get("received_at", 0))
    return any(i in forgotten and stored <= forgotten[i] for i in _ids(envelope))

"""The values the client hands out and takes: messages, settings, results."""
import dataclasses
import enum
from typing import List, Optional, Tuple

from .errors import ErrorCode
from .wire.StartPosition import StartPosition as _WireStart

# Headers: (name, value) pairs. Names are text; values are bytes (a str
# given when publishing is sent as UTF-8).
Header = Tuple[str, bytes]


class Start(enum.IntEnum):
    """Where a new subscription starts (PROTOCOL.md, Subscribe)."""

    LATEST = _WireStart.Latest  # messages committed from now on
    EARLIEST = _WireStart.Earliest  # the oldest stored message
    OFFSET = _WireStart.Offset  # start_offset
    TIME = _WireStart.Time  # the first appended at or after start_time_ms


@dataclasses.dataclass
class OutgoingMessage:
    """A message to publish. `id`: producer message id for de-duplication;
    `ttl`: seconds it may wait to be delivered (None: forever). Scheduled:
    not delivered before `delay` seconds from when the broker receives it,
    nor before `deliver_at` (Unix time in seconds, the broker's clock); it is
    stored and confirmed at once (PublishResult.scheduled) and appended to
    the topic when due, its ttl counting from then."""

    payload: bytes = b""
    headers: List[Header] = dataclasses.field(default_factory=list)
    key: bytes = b""
    id: str = ""
    ttl: Optional[float] = None
    delay: Optional[float] = None
    deliver_at: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class PublishResult:
    """Where a published message was stored; `duplicate`: an earlier message
    with the same id is stored there. With an `error` other than None_ the
    message was not stored (offset 0) and may be published again."""

    offset: int
    duplicate: bool = False
    error: ErrorCode = ErrorCode.None_
    scheduled: bool = False  # stored to be appended when due; offset is 0

    @property
    def ok(self):
        return self.error == ErrorCode.None_


@dataclasses.dataclass
class TopicSettings:
    """Retention and expiry of a topic; 0 / False: no limit.
    max_age is in seconds."""

    max_age: float = 0
    max_bytes: int = 0
    max_messages: int = 0
    work_queue: bool = False
    dead_letter_expired: bool = False


@dataclasses.dataclass(frozen=True)
class SubscriptionInfo:
    name: str  # empty: ephemeral
    consumers: int
    ack_floor: int  # every offset below is acked
    lag: int  # committed messages not acked yet
    pending: int  # delivered, waiting for an ack
    waiting_redelivery: int
    ack_timeout_ms: int
    max_deliveries: int
    dead_letter_topic: str
    skipped: int  # removed by retention before it was acked
    dead_letter_blocked: int
    dead_letter_error: str
    retry_delays_ms: List[int]  # the backoff (see Client.subscribe)


@dataclasses.dataclass(frozen=True)
class TopicInfo:
    name: str
    first_offset: int
    next_offset: int
    subscriptions: List[SubscriptionInfo]
    settings: TopicSettings
    messages: int
    bytes: int
    temporary: bool
    disk_bytes: int
    memory_bytes: int
    scheduled: int = 0  # scheduled messages stored, not yet due

"""W3C Trace Context (traceparent, tracestate headers), as the C++ client's
TraceContext: start a trace, follow it a hop, read it off a message.

    traceparent = tern.trace.start()
    client.publish("orders", b"...", trace=traceparent)
    ...
    tern.trace.trace_id(message.traceparent)   # the same trace
"""
import os
import re

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_VERSION_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_LATER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-"
                    r"([0-9a-f]{2})(-.*)?")


def parse(traceparent):
    """(trace id, parent id, flags) of a valid traceparent, else None."""
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    if not traceparent:
        return None
    m = _VERSION_00.fullmatch(traceparent)
    if m is None:
        later = _LATER.fullmatch(traceparent)
        if later is None or later.group(1) in ("00", "ff"):
            return None
        trace, parent, flags = later.group(2, 3, 4)
    else:
        trace, parent, flags = m.groups()
    if set(trace) == {"0"} or set(parent) == {"0"}:
        return None
    return trace, parent, int(flags, 16)


def start():
    """A new trace's traceparent: random ids, sampled."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child(traceparent):
    """The same trace with a new parent id (None if not valid)."""
    parsed = parse(traceparent)
    if parsed is None:
        return None
    return f"00-{parsed[0]}-{os.urandom(8).hex()}-{parsed[2]:02x}"


def trace_id(traceparent):
    parsed = parse(traceparent)
    return parsed[0] if parsed else None


def headers(trace):
    """The headers for `trace`: a traceparent, or (traceparent,
    tracestate). None, or no traceparent (a message that came without
    one): no headers, since a tracestate means nothing without it."""
    if trace is None:
        return []
    traceparent, tracestate = (trace if isinstance(trace, tuple)
                               else (trace, None))
    if not traceparent:
        return []
    out = [(TRACEPARENT, traceparent)]
    if tracestate:
        out.append((TRACESTATE, tracestate))
    return out

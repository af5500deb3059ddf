"""Tern's Python client.

    import tern
    with tern.Client.connect("127.0.0.1:7411") as client:
        client.publish("orders.created", b"...")

tern.aio has the same calls for asyncio. The wire protocol is in
protocol/PROTOCOL.md; tern.wire is generated from protocol/tern.fbs.
"""
from . import trace
from .client import Client, Responder, Subscription
from .errors import ErrorCode, TernError
from .session import Message
from .types import (OutgoingMessage, PublishResult, Start, SubscriptionInfo,
                    TopicInfo, TopicSettings)

__all__ = ["trace", "Client", "Responder", "Subscription", "ErrorCode", "TernError",
           "Message", "OutgoingMessage", "PublishResult", "Start",
           "SubscriptionInfo", "TopicInfo", "TopicSettings"]

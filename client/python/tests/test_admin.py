"""Topics and subscriptions: create, alter, list, delete."""
import pytest

import tern


def test_topic_admin(client):
    settings = tern.TopicSettings(max_messages=100, max_age=3600)
    assert client.create_topic("events", settings)
    assert not client.create_topic("events", settings)  # same: fine
    with pytest.raises(tern.TernError) as e:
        client.create_topic("events", tern.TopicSettings(max_messages=5))
    assert e.value.code == tern.ErrorCode.TopicExists
    info = client.topic_info("events")
    assert info.settings.max_messages == 100
    assert info.settings.max_age == 3600

    client.alter_topic("events", tern.TopicSettings(max_bytes=1 << 20))
    info = client.topic_info("events")
    assert (info.settings.max_bytes, info.settings.max_messages) == (1 << 20, 0)

    client.subscribe("events", "audit").close()
    assert [s.name for s in client.topic_info("events").subscriptions] == \
        ["audit"]
    client.delete_subscription("events", "audit")
    assert client.topic_info("events").subscriptions == []
    with pytest.raises(tern.TernError) as e:
        client.delete_subscription("events", "audit")
    assert e.value.code == tern.ErrorCode.UnknownSubscription

    assert "events" in [t.name for t in client.list_topics()]
    client.delete_topic("events")
    assert client.topic_info("events") is None
    with pytest.raises(tern.TernError) as e:
        client.delete_topic("events")
    assert e.value.code == tern.ErrorCode.UnknownTopic

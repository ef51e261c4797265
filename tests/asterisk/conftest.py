"""Fixtures: the fake Asterisk AMI server (a test double) and AMI clients pointed at it."""

from __future__ import annotations

import pytest

from theo_ray.asterisk.ami_client import AmiClient
from tests.asterisk.fake_ami_server import FakeAsteriskAmi
from theo_ray.asterisk.settings import AmiSettings

SECRET = "s3cret;with-semicolon"


@pytest.fixture
async def pbx():
    server = FakeAsteriskAmi(users={"theo": SECRET})
    await server.start()
    yield server
    await server.stop()


def fast_settings(port: int, **overrides) -> AmiSettings:
    values = dict(
        port=port,
        connect_timeout_s=1.0,
        action_timeout_s=1.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.4,
    )
    values.update(overrides)
    return AmiSettings(**values)


@pytest.fixture
async def make_client(pbx):
    clients: list[AmiClient] = []

    async def make(secret: str = SECRET, **overrides) -> AmiClient:
        client = AmiClient(fast_settings(pbx.port, **overrides), secret)
        await client.start()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.stop()


@pytest.fixture
async def client(make_client):
    client = await make_client()
    assert await client.wait_logged_in(3.0)
    return client

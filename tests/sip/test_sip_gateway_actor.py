"""The SipGateway Ray actor with a supervisor actor, and a pjsua2 caller process."""

from __future__ import annotations

import asyncio

import pytest
import ray

from tests.sip.conftest import free_port
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sip.messages import CallEnded, CallSetup, MediaAnswer, RemoteMedia
from theo_ray.sip.settings import SipSettings


@ray.remote(num_cpus=0)
class SupervisorDouble:
    """Test double of the lead's CallSupervisor: one plain UDP socket per call as its RTP."""

    def __init__(self) -> None:
        self.setups: list[CallSetup] = []
        self.closed: list[CallEnded] = []
        self.updates: list[RemoteMedia] = []
        self.transports: dict[str, asyncio.DatagramTransport] = {}

    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        self.setups.append(setup)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        self.transports[setup.session_id] = transport
        return MediaAnswer(*transport.get_extra_info("sockname")[:2])

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        self.updates.append(remote)

    async def close_call(self, ended: CallEnded) -> None:
        self.closed.append(ended)
        transport = self.transports.pop(ended.session_id, None)
        if transport is not None:
            transport.close()

    async def report(self) -> tuple[list[CallSetup], list[CallEnded], int]:
        return self.setups, self.closed, len(self.transports)


@pytest.fixture(scope="module")
def ray_local(ray_cluster):
    """The session's Ray cluster (tests/conftest.py): one cluster for the whole run."""
    yield


@pytest.mark.slow
async def test_gateway_actor_routes_a_call_to_the_supervisor(ray_local):
    from theo_ray.actors.sip_gateway import SipGatewayActor

    supervisor = SupervisorDouble.options(name="call-supervisor-test").remote()
    gateway = SipGatewayActor.remote(SipSettings(port=free_port()), "call-supervisor-test")
    listen = await gateway.ready.remote()
    udp = next(a for a in listen if a.transport == "udp")
    try:
        async with SipCaller(CallerSettings(media="external", codecs=["PCMA"])) as caller:
            await caller.dial(
                f"sip:theo@{udp.host}:{udp.port}", headers={"X-Theo-Session": "ray.1"},
                local_rtp_host="127.0.0.1", local_rtp_port=40200,
            )
            answered = await caller.wait_for("answered", 20)
            setups, _, open_sockets = await supervisor.report.remote()
            assert [s.session_id for s in setups] == ["ray.1"]
            assert setups[0].remote.codec == "PCMA" and open_sockets == 1
            assert answered.remote_port != 40200 and answered.codec == "PCMA"

            assert await gateway.hangup.remote("ray.1")
            await caller.wait_for("bye_received", 10)
        for _ in range(50):
            _, closed, open_sockets = await supervisor.report.remote()
            if closed:
                break
            await asyncio.sleep(0.1)
        assert [(c.session_id, c.reason) for c in closed] == [("ray.1", "agent_hangup")]
        assert open_sockets == 0
        stats = await gateway.stats.remote()
        assert stats.answered == 1 and stats.agent_hangups == 1 and stats.active_calls == 0

        # A few more calls for the INVITE -> 200 OK figure once Ray's handles are warm.
        async with SipCaller(CallerSettings(media="external")) as caller:
            for index in range(5):
                before = len(caller.events)
                await caller.dial(
                    f"sip:theo@{udp.host}:{udp.port}", headers={"X-Theo-Session": f"ray.w{index}"},
                    local_rtp_host="127.0.0.1", local_rtp_port=40200,
                )
                await caller.wait_for("confirmed", 20, after=before)
                await caller.hangup()
                await caller.wait_for("disconnected", 10, after=before)
        stats = await gateway.stats.remote()
        assert stats.answered == 6
        print("INVITE -> 200 OK through Ray (ms):", [round(ms, 1) for ms in stats.answer_ms])
    finally:
        await gateway.stop.remote()
        ray.kill(gateway)
        ray.kill(supervisor)


@pytest.mark.slow
async def test_theo_status_lists_each_shard_with_its_state(ray_local, capsys):
    from theo_ray.actors.sip_gateway import SipGatewayActor
    from theo_ray.cli.cluster_cmds import _print_shards
    from theo_ray.config import config_from_mapping
    from theo_ray.runtime.call_plane import GATEWAY_PREFIX

    name = f"{GATEWAY_PREFIX}status-test"
    gateway = SipGatewayActor.options(name=name).remote(SipSettings(port=free_port()), "nobody", name)
    try:
        listen = await gateway.ready.remote()
        # A stranger's INVITE: its 403 is counted and shown by reason in the shard's row.
        from tests.sip.raw_sip import send_and_read_final

        status_line = await asyncio.to_thread(send_and_read_final, "INVITE", listen[0].port, source="127.0.0.2")
        assert " 403 " in status_line
        await asyncio.get_running_loop().run_in_executor(None, _print_shards, config_from_mapping({}))
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if "status-test" in line)
        assert "listening" in row and str(listen[0].port) in row, out
        assert "rejected_403" in out and "refused (by" in out, out
        status = await gateway.status.remote()
        assert status.state == "listening" and status.pid > 0 and status.restarts == 0
    finally:
        await gateway.stop.remote()
        ray.kill(gateway)

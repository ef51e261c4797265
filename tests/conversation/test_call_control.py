"""AmiWithDialplanFallback: an AMI that cannot act never strands the caller with the agent.

The AmiBridge and the SipGateway are actor handles in production; these test doubles stand
in for their `.remote()` methods (fault injection: an AMI that is down, a gateway that is
gone), through the same CallControl code path the CallActor uses."""

from __future__ import annotations

from theo_ray.asterisk.transfer import TransferResult
from theo_ray.conversation.call_control import AmiCallControl, AmiWithDialplanFallback, GatewayCallControl


class _Method:
    def __init__(self, fn) -> None:
        self._fn = fn

    async def remote(self, *args, **kwargs):
        return self._fn(*args, **kwargs)


class _Bridge:
    def __init__(self, connected: bool) -> None:
        self.connected = connected
        self.calls: list[str] = []
        self.transfer = _Method(self._transfer)
        self.hangup = _Method(self._hangup)

    def _transfer(self, session_id, destination, reason, trace=None):
        self.calls.append("transfer")
        if not self.connected:
            return TransferResult(False, session_id, destination, reason, error_kind="not_connected",
                                  error="AMI not connected")
        return TransferResult(True, session_id, destination, reason, channel="PJSIP/caller-1")

    def _hangup(self, session_id, cause=16):
        self.calls.append("hangup")
        if not self.connected:
            raise ConnectionError("AMI not connected")
        return None


class _Gateway:
    def __init__(self, alive: bool = True) -> None:
        self.alive = alive
        self.byes: list[str] = []
        self.hangup = _Method(self._hangup)

    def _hangup(self, session_id):
        if not self.alive:
            raise RuntimeError("gateway actor died")
        self.byes.append(session_id)


def _control(bridge, gateway) -> AmiWithDialplanFallback:
    return AmiWithDialplanFallback(AmiCallControl(bridge, "s-1"), GatewayCallControl(gateway, "s-1"))


async def test_a_working_ami_transfers_and_no_bye_is_sent():
    bridge, gateway = _Bridge(connected=True), _Gateway()
    outcome = await _control(bridge, gateway).transfer("atendimento", "pedido do cliente")
    assert outcome.ok and outcome.detail == "PJSIP/caller-1"
    assert gateway.byes == []


async def test_an_ami_down_hands_the_caller_to_the_dialplan_with_a_bye():
    bridge, gateway = _Bridge(connected=False), _Gateway()
    outcome = await _control(bridge, gateway).transfer("atendimento", "pedido do cliente")
    assert outcome.ok, outcome
    assert outcome.action == "transfer" and "dialplan fallback" in outcome.detail and "not connected" in outcome.detail
    assert gateway.byes == ["s-1"] and bridge.calls == ["transfer"]
    hung = await _control(bridge, gateway).hangup("end_call")
    assert hung.ok and "dialplan fallback" in hung.detail
    assert gateway.byes == ["s-1", "s-1"]


async def test_no_bridge_at_all_also_falls_back():
    gateway = _Gateway()
    outcome = await _control(None, gateway).transfer("atendimento", "x")
    assert outcome.ok and "no AMI bridge running" in outcome.detail and gateway.byes == ["s-1"]


async def test_both_ways_out_failing_is_reported_not_raised():
    outcome = await _control(_Bridge(connected=False), _Gateway(alive=False)).transfer("atendimento", "x")
    assert not outcome.ok
    assert "AMI:" in outcome.detail and "BYE:" in outcome.detail

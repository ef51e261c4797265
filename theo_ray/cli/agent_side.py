"""What `theo call` learns from the agent's side of a call it placed: Theo's own record of
the call (what the agent meant to say, when each reply's own words went out) from a Theo
plane this command can reach, and a language model for the caller's sentiment.

The call itself is plain SIP and may reach any PBX or agent; these figures need Theo. The
plane is only read (one record, by the X-Theo-Session header the call sent) and never
started or stopped here. Without a reachable plane the sentiment comes from the embedded
llama.cpp model in this process, and the figures that need the record say why they are
missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from theo_ray.config import TheoConfig
from theo_ray.conversation.records import CallRecord
from theo_ray.messages import GenerateRequest


class AgentSide:
    """Attach to the plane (if any), fetch the record, classify sentiment; close() detaches."""

    def __init__(self, config: TheoConfig, supervisor_name: str = "") -> None:
        from theo_ray.actor_names import SUPERVISOR

        self.config = config
        self.supervisor_name = supervisor_name or SUPERVISOR  # a private plane's, in tests
        self.attached = False
        self._connected_here = False  # this object called ray.init, so it shuts down
        self.reason = ""  # why there is no plane to ask, when not attached
        self._engine = None

    def attach(self) -> bool:
        from theo_ray.runtime.ray_auth import ensure_auth_token
        from theo_ray.runtime.ray_cluster import _alive, read_state

        ensure_auth_token()
        import ray

        from theo_ray.runtime.call_plane import _get

        if ray.is_initialized():  # a process already connected (a test's own cluster)
            address = ray.get_runtime_context().gcs_address
        else:
            state = read_state(self.config.ray)
            address = self.config.ray.address or (state.address if state else None)
            if not address or not _alive(address):
                self.reason = "no Theo plane is running here (`theo up`) to ask for the agent's record"
                return False
            ray.init(address=address, namespace=self.config.ray.namespace, log_to_driver=False)
            self._connected_here = True
        self.attached = True
        if _get(self.supervisor_name) is None:
            self.reason = f"the Ray cluster at {address} runs no Theo call plane"
            return False
        return True

    async def record(self, session_id: str, timeout_s: float = 10.0) -> CallRecord | None:
        """The agent's record of the call, once its CallActor closed it."""
        if not self.attached:
            return None
        from theo_ray.runtime.call_plane import _get, closed_record

        supervisor = _get(self.supervisor_name)
        if supervisor is None:
            return None
        record = await closed_record(supervisor, session_id, timeout_s)
        if record is None:
            self.reason = f"the plane has no call {session_id!r} (the target was not this Theo plane?)"
        return record

    def sentiment(self):
        """The plane's LanguageModel when attached, else the embedded llama.cpp model here."""
        from theo_ray.sim.call_summary import llm_sentiment, sentiment_classifier, unavailable_sentiment

        if self.attached and not self.reason:
            from theo_ray.runtime.serve_apps import model_handles

            try:
                return llm_sentiment(model_handles())
            except Exception:  # noqa: BLE001 - no LLM application: fall back to the embedded one
                pass
        if self.config.llm.backend != "llama_cpp":
            return unavailable_sentiment(f"no LanguageModel reachable and llm.backend is {self.config.llm.backend!r}")
        try:
            from theo_ray.deployments.backends.llama_cpp_engine import LlamaCppBackend

            self._engine = LlamaCppBackend(self.config.llm, Path(self.config.paths.model_cache).expanduser())
        except Exception as exc:  # noqa: BLE001 - reported in the sentiment line instead
            return unavailable_sentiment(f"the embedded LLM did not load: {type(exc).__name__}: {exc}")
        engine = self._engine

        async def generate(request: GenerateRequest) -> AsyncIterator[str]:
            async for text, _finish, _n in engine.stream(request, request.request_id):
                yield text

        return sentiment_classifier(generate)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
        if self._connected_here:
            import ray

            ray.shutdown()
            self._connected_here = False
        self.attached = False

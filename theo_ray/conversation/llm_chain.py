"""The language-model chain of one reply: the primary model, then the fallback model.

The primary goes first unless its node-shared breaker is open; when a fallback runs, the
primary has `timeouts.llm_fallback_after_s` for its first token. An error or a missed
deadline before the first token moves the reply to the fallback model (counted on the call
record); one after the first token, or in the last model, is raised: the turn machine then
plays the pre-rendered emergency phrase and hands the caller to a human. Every attempt's
outcome goes to the breakers, so a dead model stops costing every call its deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.records import CallRecord
from theo_ray.conversation.reply import Reply, cancel_stream
from theo_ray.conversation.settings import ModelTimeoutSettings
from theo_ray.conversation.stream_deadline import ModelStreamTimeout, within_deadlines
from theo_ray.messages import GenerateRequest, LlmDelta

log = logging.getLogger("theo.turn")


class LanguageModelsDown(Exception):
    """No language model may be tried: every breaker on the chain is open."""


async def llm_deltas(
    models: ModelClient, reply: Reply, request: GenerateRequest, limits: ModelTimeoutSettings, record: CallRecord
) -> AsyncIterator[LlmDelta]:
    chain = models.language_models()
    for position, model in enumerate(chain):
        last = position == len(chain) - 1
        if not await models.breakers.allow(model):
            if last:
                raise LanguageModelsDown(f"{', '.join(chain)}: circuit breaker open")
            _count_fallback(record, reply, model, "circuit breaker open")
            continue
        first_s = limits.llm_first_token_s if last else limits.llm_fallback_after_s
        stream = reply.llm_stream = models.generate(request, model)
        started, verdict = False, None
        try:
            async for delta in within_deadlines(stream, first_s, limits.llm_token_gap_s, "llm_first_token", "llm_token_gap"):
                started = True
                reply.turn.llm_model = model
                yield delta
            verdict = True
            return
        except (asyncio.CancelledError, GeneratorExit):
            verdict = True if started and not reply.cancelled else None  # stopped by us, not failed
            raise
        except Exception as exc:
            if reply.cancelled:
                raise  # its stream was cancelled on purpose: no verdict on the model
            verdict = False
            if started or last:
                raise
            cancel_stream(stream)
            if isinstance(exc, ModelStreamTimeout):
                record.count_timeout(exc.stage)
            _count_fallback(record, reply, model, f"{type(exc).__name__}: {exc}")
        finally:
            models.breakers.record(model, verdict)


def _count_fallback(record: CallRecord, reply: Reply, model: str, why: str) -> None:
    record.llm_fallbacks += 1
    record.errors.append(f"reply {reply.turn.index}: {model} skipped ({why})")
    log.warning("%s: reply %d: %s skipped (%s); trying the fallback model", record.session_id, reply.turn.index, model, why)

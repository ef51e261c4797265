"""llama.cpp language-model backend (llama-cpp-python): the embedded CPU default.

Measured on 2 cores (shared/leads/models.md and `theo bench models`): a 1.5B Q4_K_M GGUF
streams ~15–27 tokens/s with llama.cpp against ~3 with vLLM's CPU build, and starts in under
a second. vLLM stays the engine of the GPU cluster; this is one more backend behind the same
LanguageModel deployment.

One llama.cpp context serves one request at a time, so requests queue on a lock (a replica
on 2 cores could not run two at speed anyway). The context keeps the tokens of the last
prompt: the next prompt that starts the same way (the persona and the tool schemas, then
the conversation so far) only prefills what is new — that is what makes a reply start in
a fraction of a second after the first turn. The prompt is rendered with the model's own
chat template (read from the GGUF), tools included. Aborting stops generation at the next
token and the replica is free again before the abort returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import hashlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from theo_ray.deployments.backends.chat_template import template_messages, template_tools
from theo_ray.config import LanguageModelSettings
from theo_ray.errors import ModelUnavailable
from theo_ray.messages import GenerateRequest
from theo_ray.models.llm_assets import resolve_gguf_model

_DONE = object()
_PREFILL_CHUNK = 32  # tokens between cancel checks: ~0.3 s of prefill on 2 cores
log = logging.getLogger(__name__)


class LlamaCppBackend:
    name = "llama.cpp"

    def __init__(self, settings: LanguageModelSettings, cache_dir: Path) -> None:
        import jinja2.sandbox
        import llama_cpp
        from llama_cpp import Llama

        self.settings = settings
        self.model_path = str(resolve_gguf_model(settings.model, cache_dir))
        self.llm = Llama(
            model_path=self.model_path,
            n_ctx=settings.max_model_len,
            n_threads=settings.cpu_threads,
            n_threads_batch=settings.cpu_threads_batch,
            verbose=False,
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailable(
                f"{self.model_path} has no chat template: it is not an instruction-tuned model"
            )
        # Sandboxed: a chat template is code that came with the weights.
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._template = env.from_string(template)
        self._eos_text = self.llm.detokenize([self.llm.token_eos()], special=True).decode("utf-8", "replace")
        # Every token that ends generation (Qwen has six), for min_tokens to hold back.
        vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self._end_tokens = [t for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
        self._lock = asyncio.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llama.cpp")
        self._cancel: dict[str, threading.Event] = {}
        self._running: dict[str, asyncio.Future] = {}

    def render_prompt(self, req: GenerateRequest) -> str:
        return self._template.render(
            messages=template_messages(req),
            tools=template_tools(req),
            add_generation_prompt=True,
            eos_token=self._eos_text,
            bos_token="",
        )

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def warm(self, req: GenerateRequest) -> str:
        """Prefill a prompt the calls will start with (persona + tool schemas), so the first
        caller does not wait for it: ~10 s on 2 cores for ~700 tokens. The prefilled context
        is kept in a file beside the model (~20 MB), so the next start of the same model and
        prompt loads it in well under a second. Returns what it did, for the replica's log."""
        tokens = self.llm.tokenize(self.render_prompt(req).encode("utf-8"), add_bos=False, special=True)
        path = self._prefix_path(tokens)
        if path.is_file():
            try:
                self._load_prefix(path, tokens)
                return f"prompt prefix loaded from {path}"
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # stale or damaged: prefill again
                log.warning("ignoring the saved prompt prefix %s: %s", path, exc)
                self.llm.reset()
        for _ in self.llm.create_completion(prompt=tokens, max_tokens=1, temperature=0.0, stream=True):
            pass
        try:
            self._save_prefix(path)
        except OSError as exc:  # a read-only cache only costs the next start its prefill
            log.warning("could not save the prompt prefix to %s: %s", path, exc)
            return "prompt prefilled"
        return f"prompt prefilled and saved to {path}"

    def _prefix_path(self, tokens: list[int]) -> Path:
        import llama_cpp

        model = Path(self.model_path).stat()
        key = hashlib.sha256(
            f"{self.model_path}|{model.st_size}|{model.st_mtime_ns}|{llama_cpp.__version__}|"
            f"{self.settings.max_model_len}|{tokens}".encode()
        ).hexdigest()[:20]
        return Path(self.model_path).parent / "prefix" / f"{Path(self.model_path).stem}-{key}.npz"

    def _save_prefix(self, path: Path) -> None:
        import llama_cpp
        import numpy as np

        # Not Llama.save_state(): it also copies the logits of every position (330 MB here).
        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(ctx, buffer, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, ids=np.asarray(self.llm.input_ids[: self.llm.n_tokens], np.int32),
                 state=np.frombuffer(buffer, np.uint8, count=written))
        tmp.replace(path)
        # One file per (model, persona, tools): keep the newest few, not every prompt ever used.
        saved = sorted(path.parent.glob(f"{Path(self.model_path).stem}-*.npz"), key=lambda p: p.stat().st_mtime)
        for old in saved[:-4]:
            old.unlink(missing_ok=True)

    def _load_prefix(self, path: Path, tokens: list[int]) -> None:
        import llama_cpp
        import numpy as np

        with np.load(path) as saved:
            ids, state = saved["ids"], saved["state"]
        n = len(ids)
        if n == 0 or n > len(tokens) or list(ids) != tokens[:n]:
            raise ValueError("the saved tokens are not this prompt's")
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state.tobytes())
        if llama_cpp.llama_state_set_data(self.llm._ctx.ctx, buffer, len(state)) != len(state):
            raise RuntimeError("llama.cpp did not take the saved state")
        self.llm.input_ids[:n] = ids
        self.llm.n_tokens = n

    def _generate(self, req: GenerateRequest, prompt: str, cancel: threading.Event, emit) -> None:
        """Runs on the llama.cpp thread; ``emit`` hands (text, finish, produced) to the loop."""
        import numpy as np

        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        room = self.settings.max_model_len - len(tokens)
        if room <= 0:
            emit(("", "length", 0))
            return
        if not self._prefill(tokens, cancel):
            return
        produced = 0

        def hold_eos(_ids, logits: np.ndarray) -> np.ndarray:
            # min_tokens (a benchmark's fixed reply length): the model may not end before it.
            if produced < req.min_tokens:
                logits[self._end_tokens] = -np.inf
            return logits

        chunks = self.llm.create_completion(
            prompt=tokens,
            max_tokens=min(req.max_tokens, room),
            temperature=req.temperature,
            repeat_penalty=self.settings.repeat_penalty,
            stream=True,
            logits_processor=[hold_eos] if req.min_tokens else None,
        )
        try:
            for chunk in chunks:
                if cancel.is_set():
                    return
                choice = chunk["choices"][0]
                finish = choice.get("finish_reason")
                if finish is None or choice["text"]:
                    produced += 1  # the stream's last chunk only carries the finish reason
                emit((choice["text"], finish, produced))
        finally:
            chunks.close()

    def _prefill(self, tokens: list[int], cancel: threading.Event) -> bool:
        """Evaluate the prompt (all but its last token) in small chunks, checking ``cancel``
        between them, reusing the prefix already in the context. llama-cpp-python evaluates
        a prompt in one uninterruptible call: a barge-in during the prefill of a long or
        uncached prompt (~10 s for 800 tokens on 2 cores) held the replica until it ended.
        What was evaluated before a cancel stays cached for the next request."""
        llm = self.llm
        common = 0
        for cached, new in zip(llm.input_ids[: llm.n_tokens], tokens[:-1]):
            if cached != new:
                break
            common += 1
        llm.n_tokens = common  # eval() drops the cache after n_tokens
        rest = tokens[common:-1]
        for start in range(0, len(rest), _PREFILL_CHUNK):
            if cancel.is_set():
                return False
            llm.eval(rest[start : start + _PREFILL_CHUNK])
        return not cancel.is_set()

    async def stream(self, req: GenerateRequest, request_id: str) -> AsyncIterator[tuple[str, str | None, int]]:
        """Yield (text delta, finish reason or None, completion tokens so far)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = self._cancel.setdefault(request_id, threading.Event())
        prompt = self.render_prompt(req)
        try:
            async with self._lock:
                if cancel.is_set():
                    return

                def emit(item) -> None:
                    loop.call_soon_threadsafe(queue.put_nowait, item)

                def run() -> None:
                    try:
                        self._generate(req, prompt, cancel, emit)
                    finally:
                        emit(_DONE)

                running = loop.run_in_executor(self._pool, run)
                self._running[request_id] = running
                try:
                    while True:
                        # Tokens that arrived while the consumer was busy go out as one
                        # delta: each delta is a Serve stream message, and on 2 cores that
                        # per-message work took the CPU the model's second thread needed.
                        items = [await queue.get()]
                        while not queue.empty():
                            items.append(queue.get_nowait())
                        tokens = [item for item in items if item is not _DONE]
                        if tokens:
                            yield "".join(t[0] for t in tokens), tokens[-1][1], tokens[-1][2]
                        if items[-1] is _DONE:
                            break
                    await running  # re-raises an engine error
                finally:
                    # Cancelled or closed early: stop the thread before the next request
                    # may touch the context.
                    cancel.set()
                    await asyncio.shield(running)
        finally:
            self._running.pop(request_id, None)
            self._cancel.pop(request_id, None)

    async def abort(self, request_id: str) -> None:
        cancel = self._cancel.get(request_id)
        if cancel is not None:
            cancel.set()
        running = self._running.get(request_id)
        if running is not None:
            await asyncio.shield(running)

    def unfinished(self) -> int:
        return len(self._cancel)

    def shutdown(self) -> None:
        for cancel in self._cancel.values():
            cancel.set()
        self._pool.shutdown(wait=True)
        self.llm.close()

"""Chat messages and tool schemas as the models' own Jinja chat templates expect them.

Chat templates are Jinja over plain dicts: this is the one place Theo's typed messages
become those dicts, for every engine that renders a template (vLLM, llama.cpp).
"""

from __future__ import annotations

from typing import Any

from theo_ray.messages import GenerateRequest


def template_messages(req: GenerateRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in req.messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        out.append(item)
    return out


def template_tools(req: GenerateRequest) -> list[dict[str, Any]] | None:
    if not req.tools:
        return None
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in req.tools
    ]

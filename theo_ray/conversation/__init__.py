"""The per-call conversation: the turn loop and the pieces it owns (echo gate, partials,
heard-text mapping, pre-rendered phrases, call control, model client)."""

"""Caller simulator: calls Theo like a person would and measures what the caller hears.

- ``scenario``: the scripted call (YAML -> typed Scenario).
- ``recording``: both directions on one sample-accurate timeline (stereo WAV + events JSON).
- ``analysis``: caller-side figures from the recording alone (first-audio latency, barge-in
  reaction, long silences, overlap) and the per-turn transcription hook.
- ``conversation_metrics``: GAP 16 quality metrics and scenario checks -> CallSummary JSON.
- ``report``: transcript, per-turn latency table (with Theo's span split) and checks, via rich.
"""

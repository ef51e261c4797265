"""Tracing (OpenTelemetry, one trace per call) and metrics."""

"""Telemetry for llmpipe (spans per stage, GenAI conventions): see the telemetry issue."""

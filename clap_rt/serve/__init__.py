"""`clap-rt serve`: many streams on one batched engine, events out to sinks.

config (validated TOML) -> sources (files, stdin, devices, ffmpeg URLs) -> scheduler (one engine
call for the windows due across streams) -> detectors -> outbox per sink -> sinks (JSON lines,
MQTT with Home Assistant discovery, webhooks); metrics and health over HTTP on 127.0.0.1.
The service uses the runtime (`clap_rt.stream`, `clap_rt.detect`, `clap_rt.labelset`); the
runtime never imports the service.
"""

"""A local, strict OpenAI Conversions API endpoint for tests, the demo and staging.

`server.run_sandbox` / `server.SandboxThread` run it in-process, `consumer.cli.sandbox` from the
command line; `settings.SandboxSettings` is its config section. See docs/sandbox.md.
"""

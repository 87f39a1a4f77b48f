"""The parts of the ``openai-codex-app-server`` runtime (``runtimes/codex_app_server.py``).

- ``binary``: finding the ``codex`` executable (explicit path, env var, the project's npm
  install, PATH) and the command line and environment ``codex app-server`` starts with;
- ``rpc``: the JSON-RPC connection to it, over stdio or a loopback WebSocket;
- ``approvals``: Codex's approval requests mapped onto our permission cascade.

The adapter that turns a Codex thread into runtime events stays in ``codex_app_server``.
"""

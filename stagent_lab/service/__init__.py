"""The workspace service: one owner per workspace, clients through one contract.

* ``core.WorkspaceService`` — owns store, engine, profiles, runtimes, tools and features;
  answers every request of ``stagent_lab.api``
* ``local.LocalWorkspace`` — the in-process transport (``Lab(in_process=True)``)
* ``app`` / ``server`` — the long-lived service process: an ASGI app (Starlette) on uvicorn,
  over a Unix socket with a token (``stagent-lab serve``)
* ``connection`` — the connection file and socket location

Importing this package is cheap: the modules load on use.
"""

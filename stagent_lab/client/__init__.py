"""Clients of the workspace contract: ``Lab``, ``TaskHandle`` and ``lab.memory``.

They speak only ``stagent_lab.api`` (requests, views, events) through a ``Workspace``
transport: the engine in this process, or the workspace service over its socket.
"""

from stagent_lab.client.handle import TaskHandle
from stagent_lab.client.lab import Lab

__all__ = ["Lab", "TaskHandle"]

"""Chat: a governed conversation with one agent (``%stagent chat``, ``lab.chat``).

``feature.py`` is the service side (sessions, turns as tasks); ``prompt.py`` composes a turn's
prompt; ``mentions.py`` and ``commands.py`` are the client side (``@file``/``@task``/``@df``
context, ``/`` commands); ``magics.py`` opens the chat widget.
"""

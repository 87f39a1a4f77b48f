"""Workflows: named, versioned definitions whose runs chain child tasks in one of six patterns
(sequence, planner-executor, checkpoint, loop, parallel, swarm), with approvals, delays, budgets
and blueprints. A feature of the workspace service (``feature.py``); see docs/workflows.md.

* ``definition``   — raw definitions validated into typed steps (every problem, with its path)
* ``templates``    — ``{{var}}`` / ``{{#if}}`` rendering for blueprints and row-driven loops
* ``blueprints``   — YAML blueprints: loading, typed variables, instantiation
* ``prompts``      — what each child task is told (our wording), checkpoint bodies
* ``state``        — in-memory runs and step runs, rebuilt from the store after a restart
* ``orchestrator`` — drives runs on the engine loop: children, approvals, delays, budgets
* ``patterns``     — what may start next in each pattern; what a retry reruns
* ``control``      — start, pause, resume, cancel, retry, restart
* ``reads``        — step lists, row results, the run card, the monitor panel
* ``magics``, ``cli`` — ``%stagent workflows …`` and ``stagent-lab workflows …``
"""

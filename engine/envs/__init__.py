"""Agent environments: multi-turn tool use in TRL's `environment_factory` convention (docs/agents.md).

Light on purpose: engine.envs.trajectory is imported inside reward workers.
"""

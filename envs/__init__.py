"""MADDrive-v0 and its helpers (installed as mad_sim.envs).

Importing this package does not import torch.
"""

from mad_sim.envs.agents import (
    AGENT_POLICIES,
    AgentPolicy,
    AgentStream,
    BaseAgentPolicy,
    ScriptedAgents,
    agent_policy_names,
    make_agent_policy,
    register_agent_policy,
)
from mad_sim.envs.config import EnvConfig, make_config
from mad_sim.envs.registration import ENV_ID, register_envs
from mad_sim.envs.vector import MADVectorEnv, make_vec

__all__ = [
    "AGENT_POLICIES",
    "AgentPolicy",
    "AgentStream",
    "BaseAgentPolicy",
    "EnvConfig",
    "ENV_ID",
    "MADVectorEnv",
    "ScriptedAgents",
    "agent_policy_names",
    "make_agent_policy",
    "make_config",
    "make_vec",
    "register_agent_policy",
    "register_envs",
]

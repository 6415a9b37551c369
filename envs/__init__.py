"""MADDrive-v0 and its helpers (installed as mad_sim.envs).

Importing this package does not import torch.
"""

from mad_sim.envs.agents import AgentStream, agent_policy_names, make_agent_policy, register_agent_policy
from mad_sim.envs.config import EnvConfig, make_config
from mad_sim.envs.registration import ENV_ID, register_envs
from mad_sim.envs.vector import make_vec

__all__ = ["AgentStream", "EnvConfig", "ENV_ID", "agent_policy_names", "make_agent_policy", "make_config",
           "make_vec", "register_agent_policy", "register_envs"]

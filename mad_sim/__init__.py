"""mad-sim: a closed-loop driving simulator on the MAD video world model.

Importing the package registers the Gymnasium environment ``MADDrive-v0``
(idempotently) without importing torch.
"""

__version__ = "0.1.0"

from mad_sim.envs.registration import register_envs as _register_envs

_register_envs()

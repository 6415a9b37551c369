"""MADDrive-v0 and its wrappers (installed as mad_sim.envs)."""

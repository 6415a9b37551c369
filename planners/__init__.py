"""Planners that propose ego trajectories (installed as mad_sim.planners)."""

"""Open-loop and closed-loop evaluation (installed as mad_sim.eval)."""

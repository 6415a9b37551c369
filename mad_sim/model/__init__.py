"""model layer of mad-sim (see DESIGN.md)."""

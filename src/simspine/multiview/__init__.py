"""Multi-view front end: robust triangulation, filtering of 3D trajectories, merge with trusted markers."""

"""Monte Carlo simulation of the spin lattices (Type I and Type II)."""

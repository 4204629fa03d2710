"""A stand-in for a user's own package, outside ``vae_zoo``: it subclasses the zoo's VAE."""

"""ssljax: self-supervised visual representation learning in JAX/Flax.

Data flows one way: CLI -> config -> data -> method (models) -> train step -> evals ->
checkpoints/metrics. See README.md for the layout and the commands.
"""

__version__ = "0.1.0"

"""Attention Clusters on Flash-MNIST with MindSpore.

The package holds every computation of the Snakemake workflow: MNIST input
(download or synthetic), the noise model, Noisy-MNIST and Flash-MNIST
generation, the frame feature extractor, and the feature pickles.
"""

__version__ = "0.1.0"


class StepFailed(Exception):
    """A step failed for a reason its message states in one line (no traceback needed)."""


class WorkflowInputError(StepFailed):
    """Bad input (a file or a config value): the message names it and says what was expected."""

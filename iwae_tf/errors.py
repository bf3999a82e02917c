"""The error of a run that cannot go on, apart from TensorFlow: the entry
points and a grid's driver catch it without importing TensorFlow
(data.DataError, the other error of bad input, lives with the loaders)."""


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss, a mismatched resume, a
    checkpoint that cannot be read or written)."""

"""The one exception type the data layer raises for bad or missing data."""


class DatasetError(ValueError):
    """Data that is missing, corrupt or does not match its `DatasetSpec`.

    A `ValueError`, so callers that validate arguments catch it too. Messages
    are one line and say what was expected, what was found and, for missing
    data, where to get it.
    """

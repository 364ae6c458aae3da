"""The one exception type ax raises for problems a user can act on."""


class AxError(Exception):
    """A problem with the user's input or environment; the message names the file, field and value."""

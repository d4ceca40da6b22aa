"""The project's own exception types for errors a user can cause and fix.

The CLI prints their message as one line and exits with status 2; anything else is a bug and
keeps its traceback.
"""


class CocktailAssetsError(Exception):
    """A problem with data, settings or a service that the user can fix."""


class ConfigError(CocktailAssetsError):
    """A setting is missing or malformed; the message names the setting."""


class DatabaseUnavailable(CocktailAssetsError):
    """The database cannot be reached or refuses the login; the message names host and db."""


class MigrationError(CocktailAssetsError):
    """A migration file failed; the message names the file and quotes Postgres."""


class DataError(CocktailAssetsError):
    """The site's data breaks a rule the analytics rely on; the message names the row."""


class StoreError(CocktailAssetsError):
    """The analytics store cannot be read or written; the message names the location."""

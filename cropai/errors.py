"""Domain errors, in one place so the CLI and the API map them to messages and
HTTP statuses the same way. Every message says what was wrong and what to do."""

from __future__ import annotations


class CropAIError(Exception):
    """Base of every error Crop AI raises on purpose."""


class SettingsError(CropAIError):
    """A ``CROPAI_*`` setting has a value that cannot be used."""


class ServiceUnavailable(CropAIError):
    """The database or the object store cannot be reached."""


class ObjectNotFound(CropAIError, KeyError):
    """A key asked of the object store does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class InvalidInput(CropAIError, ValueError):
    """A caller gave a value Crop AI cannot work with (a bbox, a date window, a path)."""


class InvalidRequestField(InvalidInput):
    """One field of an analysis request breaks a rule (``field``: "aoi", "start_date", "end_date"),
    so that the API can name it in its 422 and the CLI print the message as it is."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidScene(CropAIError):
    """A scene file that cannot be ingested; the message is the reason kept with it in quarantine."""


class SourceUnreadable(CropAIError):
    """An ingestion source (folder, inbox, STAC catalog or API) cannot be listed at all."""


class ModelNotFound(CropAIError, LookupError):
    """No registered model version matches a ``name@version`` reference."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else "model not found"


class ModelIntegrityError(CropAIError):
    """A model version's stored weights do not match its checksum or cannot be read."""


class ModelVersionExists(CropAIError):
    """A model version is registered already; versions are immutable."""

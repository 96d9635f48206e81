"""Exception types. Each message is one line naming the file, column or key and the fix."""


class HousingError(Exception):
    """Base class: anything the user can fix by changing input, config or environment."""


class ConfigError(HousingError):
    """A config key is unknown or its value is not allowed."""


class DataSourceError(HousingError):
    """The data source cannot be read: missing file, unreachable URL, bad archive, checksum."""


class SchemaError(HousingError):
    """The data does not match the schema declared in config/data/."""


class UpstreamError(HousingError):
    """A step's inputs are missing, stale or tampered with."""


class SealedTestSetError(HousingError):
    """Something other than the register step tried to open the sealed test set."""


class StorageError(HousingError):
    """A file could not be written: full disk, read-only directory, missing permission."""


class StudyStorageError(HousingError):
    """The sweep's study database cannot be opened, or holds a study this sweep cannot continue."""


class SweepError(HousingError):
    """The sweep could not finish its study: a worker process died."""


class MonitoringReferenceError(HousingError):
    """A model version's monitoring reference is missing, from another schema version, or malformed."""


class WarmUpError(HousingError):
    """A model version could not score its own input example: it cannot be served as it is."""

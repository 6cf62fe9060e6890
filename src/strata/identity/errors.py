"""Why an identity did not resolve."""


class IdentityError(Exception):
    """Base class of resolution errors."""


class InvalidIdentifier(IdentityError):
    """The DID or handle is not syntactically valid, or uses a method or form not supported."""


class IdentityNotFound(IdentityError):
    """An authoritative source answered that the DID or handle does not exist."""


class ResolutionFailed(IdentityError):
    """No source answered usefully (down, hanging, malformed answer) and nothing was cached."""

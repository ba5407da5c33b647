"""Standard Webhooks secrets (``whsec_`` + base64 of the key): what makes one usable.

Checked at load (a destination's or an alert's ``secret``, SPEC 17) and by ``relay sink``,
so a bad secret is a config error naming its key path, never a delivery that fails.
"""

from __future__ import annotations

import binascii
from base64 import b64decode

PREFIX = "whsec_"
#: The key's length in bytes: Standard Webhooks secrets are 24 to 64 random bytes.
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a usable ``whsec_<base64>`` secret (never quoting it), or None."""
    if not secret.startswith(PREFIX):
        return "must start with whsec_ followed by base64 of 24 to 64 bytes"
    try:
        key = b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return "the part after whsec_ must be base64 (A-Z, a-z, 0-9, +, / and = padding)"
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return (f"the key after whsec_ is {len(key)} bytes; it must be {MIN_KEY_BYTES} to "
                f"{MAX_KEY_BYTES} (for example: python3 -c \"import base64, os; "
                "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\")")
    return None

"""The config: ``load_config(path)`` gives frozen ``Settings``; every problem names its key
path and line (``relay.yaml:13: routes[0].destinations[0].colour: unknown key``)."""

from relay.config.loading import load_config, parse_config
from relay.config.settings import AdminToken, AlertTarget, Limits, Role, Settings, Subhook
from relay.config.yamltools import parse_duration, parse_size

__all__ = ["AdminToken", "AlertTarget", "Limits", "Role", "Settings", "Subhook", "load_config",
           "parse_config", "parse_duration", "parse_size"]

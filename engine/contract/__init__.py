"""What the studio may import from the engine: config, protocol and schema. No heavy imports."""

from engine.contract.config import ConfigError, RunConfig, config_from_dict, field_help, load_run_config
from engine.contract.protocol import (
    COMMANDS,
    EVENT_TYPES,
    PROTOCOL_VERSION,
    RUN_STATUSES,
    Event,
    ProtocolError,
    command_line,
    make_event,
    parse_command,
    parse_event,
)
from engine.contract.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "COMMANDS",
    "EVENT_TYPES",
    "MIGRATIONS",
    "PROTOCOL_VERSION",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "ConfigError",
    "Event",
    "ProtocolError",
    "RunConfig",
    "command_line",
    "config_from_dict",
    "field_help",
    "load_run_config",
    "make_event",
    "parse_command",
    "parse_event",
]

"""Settings that define their own command-line flags: a dataclass field made by `setting` carries
its flag's help, group, bounds and name, and `define_flags` turns the fields of a configuration
dataclass into absl flags. A default and its help are written once, beside the field.

Flags are grouped by `group` (absl's `--helpfull` lists each group under
`tfdfc.compress (<group>)`); a method's own settings carry its prefix (e.g. `--slim_threshold`),
and a renamed flag keeps its old name for one release as a deprecated alias.
"""

import dataclasses
import numbers
import sys

from absl import flags

from tfdfc.errors import ConfigError

REQUIRED = dataclasses.MISSING  # `setting(REQUIRED, ...)`: a field without a default


def setting(default, help_text, group, *, flag=None, choices=None, lower=None, upper=None,
            old=None, kind=None):
    """A dataclass field whose metadata defines its flag.

    Args:
      default: the field's default (REQUIRED for none: the flag must be given).
      help_text: one line of flag help.
      group: the --helpfull group (e.g. "run", "pruning").
      flag: the flag's name when it is not the field's (a method's prefix).
      choices: the allowed values of a string setting (an enum flag).
      lower, upper: bounds of a number.
      old: the flag's previous name, kept as a deprecated alias.
      kind: the flag type where the default does not tell (a None default): "bool", ...
    """
    metadata = {"help": help_text, "group": group, "flag": flag, "choices": choices,
                "lower": lower, "upper": upper, "old": old, "kind": kind}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fields_with_flags(cls):
    """The fields of the dataclass `cls` made by `setting` (those that have a flag)."""
    return [field for field in dataclasses.fields(cls) if "group" in field.metadata]


def check_bounds(config):
    """Raises ConfigError for the first setting of the dataclass instance `config` outside its
    `choices`, `lower` or `upper`: the flag's bounds bind values given from Python too (the
    API, `pipeline.run`), so a new method's settings are checked once declared."""
    for field in fields_with_flags(type(config)):
        value, meta = getattr(config, field.name), field.metadata
        if value is None:
            continue
        kind = _kind(field)
        if kind in _TYPES and (not isinstance(value, _TYPES[kind][0])
                               or (kind != "bool" and isinstance(value, bool))):
            raise ConfigError(f"--{flag_name(field)} must be {_TYPES[kind][1]}, got {value!r}")
        if meta["choices"] and value not in meta["choices"]:
            raise ConfigError(f"--{flag_name(field)} must be one of "
                              f"{', '.join(map(str, meta['choices']))}, got {value!r}")
        if meta["lower"] is not None and value < meta["lower"]:
            raise ConfigError(f"--{flag_name(field)} must be >= {meta['lower']}, got {value!r}")
        if meta["upper"] is not None and value > meta["upper"]:
            raise ConfigError(f"--{flag_name(field)} must be <= {meta['upper']}, got {value!r}")


# What a setting of each flag kind accepts from Python, and how an error names it (a string such
# as "0.5" would otherwise meet a bound as a TypeError).
_TYPES = {"float": (numbers.Real, "a number"), "integer": (numbers.Integral, "a whole number"),
          "bool": (bool, "True or False"), "enum": (str, "a string"),
          "string": (str, "a string")}


def flag_name(field):
    """The flag of a setting: its `flag` name, else the field's."""
    return field.metadata["flag"] or field.name


def _kind(field):
    """The absl flag type of a setting: from its choices, its declared kind, or its default."""
    if field.metadata["choices"]:
        return "enum"
    if field.metadata["kind"]:
        return field.metadata["kind"]
    for kind, types in (("bool", bool), ("list", tuple), ("integer", int), ("float", float)):
        if isinstance(field.default, types):
            return kind
    return "string"


def _define(kind, name, default, meta, text, module_name, flag_values):
    common = dict(flag_values=flag_values, module_name=module_name)
    if kind == "enum":
        return flags.DEFINE_enum(name, default, list(meta["choices"]), text, **common)
    if kind == "bool":
        return flags.DEFINE_bool(name, default, text, **common)
    if kind == "list":
        return flags.DEFINE_list(name, None if default is None else list(default), text,
                                 **common)
    bounds = {key: value for key, value in (("lower_bound", meta["lower"]),
                                             ("upper_bound", meta["upper"]))
              if value is not None}
    if kind == "integer":
        return flags.DEFINE_integer(name, default, text, **bounds, **common)
    if kind == "float":
        return flags.DEFINE_float(name, default, text, **bounds, **common)
    return flags.DEFINE_string(name, default, text, **common)


def define_flags(cls, program, flag_values=flags.FLAGS):
    """Defines a flag for every setting of the dataclass `cls`, grouped as `program (<group>)`,
    and makes them key flags of the calling module (so `--help` lists them)."""
    caller = sys._getframe(1).f_globals.get("__name__")  # pylint: disable=protected-access
    caller = sys.argv[0] if caller == "__main__" else caller
    for field in fields_with_flags(cls):
        module_name = f"{program} ({field.metadata['group']})"
        kind = _kind(field)
        default = None if field.default is dataclasses.MISSING else field.default
        holder = _define(kind, flag_name(field), default, field.metadata,
                         field.metadata["help"], module_name, flag_values)
        flag_values.register_key_flag_for_module(caller, flag_values[holder.name])
        if field.metadata["old"]:
            _define(kind, field.metadata["old"], None, field.metadata,
                    f"Deprecated: use --{flag_name(field)}.", module_name, flag_values)
        if field.default is dataclasses.MISSING:
            flags.mark_flag_as_required(holder.name, flag_values)


def values_from_flags(cls, log=print, flag_values=flags.FLAGS):
    """{field name: value} of `cls`'s settings as the flags give them; an old name that was
    given is used with a deprecation line."""
    values = {}
    for field in fields_with_flags(cls):
        name, old = flag_name(field), field.metadata["old"]
        value = flag_values[name].value
        if old and flag_values[old].present:
            if flag_values[name].present:
                raise ConfigError(f"--{old} is the deprecated name of --{name}: give only one")
            log(f"--{old} is deprecated and will be removed: use --{name}")
            value = flag_values[old].value
        if _kind(field) == "list":
            value = _floats(name, value or [])
        values[field.name] = value
    return values


def given(cls, flag_values=flags.FLAGS):
    """Names of `cls`'s fields whose flag (or old name) was given on the command line."""
    return {field.name for field in fields_with_flags(cls)
            if flag_values[flag_name(field)].present
            or (field.metadata["old"] and flag_values[field.metadata["old"]].present)}


FLAG_LINES_HEADER = ("# The flags given (replay with --flagfile=this file). Unset ones take their "
                     "method's recipe or default:\n# config.json holds every resolved setting.\n")


def flag_lines(classes, flag_values=flags.FLAGS):
    """`--name=value` lines of the settings' flags that were given, for a run's flags.txt; a
    value given by its deprecated name is written under the current one. Unset flags are left
    out: written with their defaults, a replay would mark them given and override the recipe."""
    lines = []
    for cls in classes:
        for field in fields_with_flags(cls):
            name, old = flag_name(field), field.metadata["old"]
            if old and flag_values[old].present:
                line = flag_values[old].serialize()
                line = (f"--no{name}{line[len(old) + 4:]}" if line.startswith(f"--no{old}")
                        else f"--{name}{line[len(old) + 2:]}")
            elif flag_values[name].present:
                line = flag_values[name].serialize()
            else:
                continue
            lines.append(line)
    return FLAG_LINES_HEADER + "\n".join(line for line in lines if line) + "\n"


def _floats(name, values):
    try:
        return tuple(float(value) for value in values)
    except ValueError as error:
        raise ConfigError(f"--{name} takes comma-separated numbers, got {','.join(values)}") \
            from error

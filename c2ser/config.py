"""Typed configuration: dataclasses + YAML + ``key=value`` overrides (OmegaConf structured configs).

Every component owns a small dataclass config. A YAML file only needs the keys it changes; unknown keys
and wrong types are rejected with a clear error. Overrides use OmegaConf's dotlist syntax::

    cfg = load_config(ModelConfig, "recipes/tiny/conf/model.yaml", ["lora.r=4", "llm.dtype=float32"])
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence, Type, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override that does not fit its schema."""


def load_config(schema: Type[T], path: str | Path | Sequence[str | Path] | None = None,
                overrides: Sequence[str] = (), section: str | None = None) -> T:
    """Build ``schema`` from its defaults, then YAML file(s) merged in order (optionally one ``section`` of
    each), then ``key=value`` overrides."""
    cfg = OmegaConf.structured(schema)
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    try:
        for path in paths:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found")
            data = OmegaConf.load(path)
            if section is not None:
                data = data.get(section, {})
            cfg = OmegaConf.merge(cfg, data)
        path = paths[-1] if paths else None
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{str(e).splitlines()[0]}") from None


def to_dict(cfg: Any) -> dict:
    """A plain, YAML/JSON-serialisable dict of a dataclass config."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def from_dict(schema: Type[T], data: dict) -> T:
    """Rebuild a dataclass config from :func:`to_dict` output (e.g. stored in a checkpoint)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))


def save_yaml(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


def replace(cfg: T, **changes) -> T:
    return dataclasses.replace(cfg, **changes)

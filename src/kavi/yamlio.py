"""YAML in and out, always through a typed pydantic model."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from kavi.errors import KaviError

M = TypeVar("M", bound=BaseModel)


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, *, source: str, error: type[KaviError]) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        raise error(
            f"{source} is not valid YAML",
            why=str(exc).splitlines()[0] if str(exc) else "parse error",
            remedy=f"fix the syntax of {source}",
        ) from None


def format_validation(exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def load_yaml_model(model: type[M], text: str, *, source: str, error: type[KaviError]) -> M:
    data = load_yaml(text, source=source, error=error)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(
            f"{source} must be a mapping at the top level",
            remedy=f"rewrite {source} as `key: value` lines",
        )
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise error(
            f"{source} does not match the expected schema",
            why=format_validation(exc),
            remedy=f"correct {source} as the message says and commit it",
        ) from None


def dump_yaml(data: Any) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text


def dump_model(model: BaseModel) -> str:
    return dump_yaml(model.model_dump(mode="json"))

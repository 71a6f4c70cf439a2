"""The book's profiles (``mixuplib/profiles.yml``): the papermill parameters each chapter gets
under a profile, read by the batch runner (:mod:`mixuplib.book`) and by what a chapter computes
about another profile (the paper profile's cost, :mod:`mixuplib.cost`), without importing the runner.

    chapter_parameters("paper", "02_input_mixup")   # the profile's shared parameters, then the chapter's
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["PROFILES", "load_profiles", "resolve", "spec_parameters", "chapter_parameters", "parameters_yaml"]

PROFILES = Path(__file__).with_name("profiles.yml")


def load_profiles(path: Path = PROFILES) -> dict:
    """The profiles as a dict: ``{name: {description, output_dir, parameters, chapters, ...}}``."""
    return yaml.safe_load(Path(path).read_text())


def resolve(profile: str, chapters: list[str] | None, profiles: dict) -> tuple[dict, list[str]]:
    """The profile's spec and the chapters to run (default: all of the profile's).

    Raises ``ValueError`` naming an unknown profile or chapter and what there is.
    """
    if profile not in profiles:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(profiles)}")
    spec = profiles[profile]
    names = chapters or list(spec["chapters"])
    unknown = [n for n in names if n not in spec["chapters"]]
    if unknown:
        raise ValueError(f"profile {profile!r} has no chapter {unknown}; it has {list(spec['chapters'])}")
    return spec, names


def _update_nested(base: dict, changes: dict) -> dict:
    """``base`` updated with ``changes``; a dict value updates the dict it replaces key by key."""
    updated = dict(base)
    for key, value in changes.items():
        updated[key] = _update_nested(updated[key], value) if isinstance(value, dict) and isinstance(updated.get(key), dict) else value
    return updated


def spec_parameters(spec: dict, chapter: str, overrides: dict | None = None) -> dict:
    """A chapter's papermill parameters under a profile: shared, then the chapter's, then
    ``overrides``, each merged into the one before (dicts such as ``training`` key by key)."""
    return _update_nested(_update_nested(spec.get("parameters") or {}, spec["chapters"][chapter] or {}), overrides or {})


def chapter_parameters(profile: str, chapter: str, overrides: dict | None = None, *, profiles: dict | None = None) -> dict:
    """The papermill parameters the runner injects into ``chapter`` under ``profile``: the
    profile's shared parameters, then the chapter's, then ``overrides`` (see :func:`spec_parameters`).
    ``params`` prints them as YAML for a plain ``papermill -f`` call.

    Raises ``ValueError`` naming an unknown profile or chapter and what there is.
    """
    spec, _ = resolve(profile, [chapter], profiles or load_profiles())
    return spec_parameters(spec, chapter, overrides)


def parameters_yaml(parameters: dict) -> str:
    """``parameters`` as the YAML file ``papermill -f`` reads back to the same dict."""
    return yaml.safe_dump(parameters, sort_keys=False, default_flow_style=None, width=120)

"""Provider profiles: what is special about a provider, as one data table.

A generic stage never tests a model name; it asks the request's profile
(``ctx.profile``). Adding a provider means adding a row to ``PROFILES``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT", "PROFILES", "Profile", "resolve"]


@dataclass(frozen=True, slots=True)
class Profile:
    """The quirks of one provider family.

    ``prefixes`` are matched against the start of the model string.
    ``cache_control``: the provider accepts ``cache_control`` on the system
    message (Anthropic natively; MiniMax and Z.ai/GLM pass it through).
    """

    name: str
    prefixes: tuple[str, ...] = ()
    cache_control: bool = False


#: first match wins; ``DEFAULT`` when none matches
PROFILES: tuple[Profile, ...] = (
    Profile("anthropic", ("anthropic/", "claude-"), cache_control=True),
    Profile("minimax", ("minimax/", "minimax-", "MiniMax-"), cache_control=True),
    Profile("zai", ("zai-glm", "glm-"), cache_control=True),
)

DEFAULT = Profile("default")


def resolve(model: str, api_base: str | None = None) -> Profile:
    """The profile for a model string (``api_base`` is taken into account later)."""
    for profile in PROFILES:
        if model.startswith(profile.prefixes):
            return profile
    return DEFAULT

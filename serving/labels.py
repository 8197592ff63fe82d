"""One model's TF Serving labels: the config's, moved by the model registry's aliases.

A label starts where `serving.models.<name>.labels` puts it. When the registry has an alias
of the same name (see `serving.registry_labels`), the label follows the alias, but only to a
version the server has AVAILABLE: an alias naming a version the server refused, one not in
the repository, or a registry version that is not a Peppercorn export leaves the label where
it was, and `error` says why. An alias removed from the registry drops its label, and the
config's label of that name (if any) applies again.

`ModelLabels` holds no lock: the model manager calls it under its own lock.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from peppercorn.tracking.registry import AliasTarget

__all__ = ["Label", "ModelLabels", "SlotState"]


class SlotState(Protocol):
    """What the labels need to know of a version's place in the manager."""

    state: str
    error_code: str
    error_message: str


@dataclass(frozen=True)
class Label:
    """Where one label points (`version`, None: nowhere yet), who put it there (`source`:
    `config` or `registry`), the registry version its alias names, and why the label did not
    follow the alias (`error`)."""

    version: int | None
    source: str
    registry_version: str | None = None
    error: str | None = None

    def as_status(self) -> dict:
        """The label's entry in the status's `labels` object."""
        return {
            "version": None if self.version is None else str(self.version),
            "source": self.source,
            "registry_version": self.registry_version,
            "error": self.error,
        }


class ModelLabels:
    """The labels of one model; `update` applies a reading of the registry's aliases."""

    def __init__(self, config_labels: Mapping[str, int]):
        self._config = {name: Label(v, "config") for name, v in config_labels.items()}
        self._registry: dict[str, Label] = {}  # labels an alias of the same name governs
        self._targets: set[int] = set()  # versions the last reading's aliases name

    def get(self, label: str) -> Label | None:
        """The label, registry before config (None when neither knows it)."""
        return self._registry.get(label) or self._config.get(label)

    def status(self) -> dict[str, dict]:
        """Every label's status entry, by name."""
        merged = {**self._config, **self._registry}
        return {name: merged[name].as_status() for name in sorted(merged)}

    def to_load(self, aliases: Mapping[str, AliasTarget], present: Collection[int]) -> list[int]:
        """The versions the aliases name that are in the repository, newest first: TF Serving
        serves a label only from a loaded version, so these are loaded whatever the policy."""
        return sorted({t.version for t in aliases.values() if t.version in present}, reverse=True)

    def pinned(self) -> set[int]:
        """Versions to keep loaded beyond the policy: those the aliases name and those the
        registry's labels stay on (a label held back keeps answering from its old version)."""
        held = {label.version for label in self._registry.values() if label.version is not None}
        return held | self._targets

    def update(
        self,
        aliases: Mapping[str, AliasTarget],
        present: Collection[int],
        slots: Mapping[int, SlotState],
    ) -> list[tuple[bool, str]]:
        """Apply a reading of the registry: `aliases` by name, the repository's complete
        versions (`present`) and the manager's slots. Returns what changed, as (is a problem,
        message) for the manager to log."""
        changes: list[tuple[bool, str]] = []
        for name in sorted(set(self._registry) - set(aliases)):
            del self._registry[name]
            fallback = self._config.get(name)
            now = f"is the config's version {fallback.version} again" if fallback else "is gone"
            changes.append((False, f"alias {name} was removed from the registry: label {now}"))
        self._targets = {t.version for t in aliases.values() if t.version in present}
        for name, target in sorted(aliases.items()):
            before = self.get(name)
            label = _follow(name, target, before, present, slots)
            if label == self._registry.get(name):
                continue
            self._registry[name] = label
            if label.error is not None:
                changes.append((True, label.error))
            elif before is None or before.version != label.version:
                was = "" if before is None else f", was version {before.version}"
                why = f"alias {name} names registry version {label.registry_version}"
                changes.append((False, f"label {name} -> version {label.version} ({why}{was})"))
        return changes


def _follow(
    name: str,
    target: AliasTarget,
    before: Label | None,
    present: Collection[int],
    slots: Mapping[int, SlotState],
) -> Label:
    """Where label `name` stands once its alias names `target`."""
    if target.problem is None and target.version in present:
        slot = slots.get(target.version)
        if slot is not None and slot.state == "AVAILABLE":
            return Label(target.version, "registry", target.registry_version)
    where = None if before is None else before.version
    if target.problem is not None:
        why = target.problem
    elif target.version not in present:
        why = f"alias {name} names version {target.version}, which is not in the repository"
    else:
        slot = slots.get(target.version)
        if slot is not None and slot.state == "END" and slot.error_code != "OK":
            why = (f"alias {name} names version {target.version}, which the server refused: "
                   f"{slot.error_code}: {slot.error_message}")  # fmt: skip
        else:
            state = "not loaded" if slot is None else slot.state
            why = f"alias {name} names version {target.version}, which is {state}"
    stays = "the label is not set" if where is None else f"the label stays on version {where}"
    source = "registry" if before is None else before.source
    return Label(where, source, target.registry_version, f"{why}; {stays}")

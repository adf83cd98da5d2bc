"""`automation:`: when the assets downstream of bronze refresh themselves (foundation.yaml, usecase.yaml, model spec).

- `eager`: as soon as an input changed (a source landed, a model was registered) and its blocking checks passed.
- `on_cron`: at the ticks of `cron`, once every input has been updated since the previous tick.
- `manual`: never by itself (`foundation run`, the UI).

The workspace's `automation:` is the default; a use case's `automation:` overrides it for that use case's dbt
models, gold and ML assets; a model spec's `automation:` overrides it for that model. Sources keep their own
`schedule:` (and `load: {on_new_files: true}`): docs/sources.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from foundation.specs.fields import Schedule, Spec

AutomationPolicy = Literal["eager", "on_cron", "manual"]
POLICIES: tuple[str, ...] = ("eager", "on_cron", "manual")


class AutomationSpec(Spec):
    policy: AutomationPolicy = Field(
        "eager", description="eager (refresh when an input changes), on_cron (at the ticks of `cron`), or manual."
    )
    cron: Schedule | None = Field(None, description="The ticks of policy on_cron (e.g. '0 6 * * *').")

    @model_validator(mode="after")
    def _cron_with_on_cron(self) -> AutomationSpec:
        if self.policy == "on_cron" and (self.cron is None or self.cron == "manual"):
            raise ValueError("policy: on_cron needs cron: '<5-field cron>' (e.g. cron: '0 6 * * *')")
        if self.policy != "on_cron" and self.cron is not None:
            raise ValueError(f"cron is only read with policy: on_cron (policy is {self.policy}): remove it")
        return self


def effective_policy(*layers: AutomationSpec | None) -> AutomationSpec:
    """The innermost declared policy wins: `effective_policy(workspace, usecase, model)`."""
    declared = [layer for layer in layers if layer is not None]
    return declared[-1] if declared else AutomationSpec()

"""The tenant and storage settings (`TenantPolicy`), handed to workflows by an activity."""

from __future__ import annotations

from temporalio import activity

from ferry.contracts.policy import TenantPolicy


class TenantPolicyActivities:
    """Answers `tenant_policy` with the policy the worker was built with."""

    def __init__(self, policy: TenantPolicy) -> None:
        self._policy = policy

    @activity.defn(name="tenant_policy")
    async def policy(self) -> TenantPolicy:
        return self._policy

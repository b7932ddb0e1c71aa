"""What the workflow tests share: the time-skipping server, told Ferry's search attribute."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from ferry.contracts.workflows import TENANT_ID


@pytest.fixture(scope="module")
async def env(time_skipping_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """The time-skipping test server, told about the `TenantId` search attribute.

    Ferry's workflows set it on their children; the test server knows no custom
    search attributes until they are added, and leaves a child that uses an unknown
    one never started (its parent waits forever).
    """
    request = AddSearchAttributesRequest(
        namespace=time_skipping_env.client.namespace,
        search_attributes={TENANT_ID.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
    )
    try:
        await time_skipping_env.client.operator_service.add_search_attributes(request)
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
    return time_skipping_env

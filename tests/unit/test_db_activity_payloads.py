"""DatabaseActivities' payloads: one dataclass in and one out, and they survive the converter."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.converter import DataConverter

from ferry.activities import database as d
from ferry.contracts.enums import (
    FileState,
    GranteeType,
    MemberRole,
    MigrationItemState,
    SharePermission,
    TenantPlan,
)
from ferry.contracts.storage import StorageRef
from ferry.db import PermissionReason

ACTIVITIES = [
    fn
    for _, fn in inspect.getmembers(d.DatabaseActivities, inspect.isfunction)
    if hasattr(fn, "__temporal_activity_definition")
]


def test_activity_names_are_unique() -> None:
    names = [fn.__temporal_activity_definition.name for fn in ACTIVITIES]  # type: ignore[attr-defined]
    assert len(names) == len(set(names)) >= 20


@pytest.mark.parametrize("fn", ACTIVITIES, ids=lambda fn: fn.__name__)
def test_one_dataclass_in_and_one_out(fn: Any) -> None:
    hints = typing.get_type_hints(fn, vars(d))
    params = [p for p in inspect.signature(fn).parameters if p != "self"]
    assert len(params) == 1
    assert dataclasses.is_dataclass(hints[params[0]]) and dataclasses.is_dataclass(hints["return"])
    # New fields must have defaults, so every field after the first defaulted one has one too.
    for cls in (hints[params[0]], hints["return"]):
        defaults = [
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in dataclasses.fields(cls)
        ]
        assert defaults == sorted(defaults), cls


@pytest.mark.parametrize(
    "value",
    [
        d.ShareInput(
            "t-1",
            "s",
            "f",
            "u",
            GranteeType.USER,
            SharePermission.EDIT,
            "g",
            datetime(2030, 1, 1, tzinfo=UTC),
        ),
        d.UsageReport(
            "t-1",
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 2, tzinfo=UTC),
            1,
            2,
            3,
            TenantPlan.PRO,
        ),
        d.FileProcessingResult(
            d.FileRecord(
                "t-1",
                "f",
                FileState.PROCESSED,
                "a.png",
                "image/png",
                1,
                "u",
                StorageRef("local", "b", "k"),
                thumbnails=[d.Thumbnail("n", "k", 1, 2, "c")],
            ),
            created=True,
        ),
        d.MigrationItemsQuery("t-1", "m", [MigrationItemState.VERIFIED]),
        d.PermissionResult(True, PermissionReason.GRANTED_BY_ROLE, MemberRole.OWNER),
        d.UploadCheck(False, d.UploadRefusal.TOO_LARGE),
    ],
    ids=lambda value: type(value).__name__,
)
async def test_payloads_round_trip(value: Any) -> None:
    converter = DataConverter.default
    (decoded,) = await converter.decode(await converter.encode([value]), [type(value)])
    assert decoded == value

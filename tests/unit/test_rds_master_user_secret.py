"""Decisions of the rds_master_user_secret module (the AWS calls are covered by tests/integration/test_rds.py)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.threetier.k8s.plugins.modules import rds_master_user_secret as mod

KEY_ARN = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET_ARN = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:rds!db-0b7d-AbCdEf"


def managed(kms_key_id: str = KEY_ARN, status: str = "active") -> dict[str, Any]:
    return {
        "DBInstanceStatus": "available",
        "MasterUserSecret": {"SecretArn": SECRET_ARN, "SecretStatus": status, "KmsKeyId": kms_key_id},
    }


@pytest.mark.parametrize(
    ("wanted", "current", "matches"),
    [
        (None, KEY_ARN, True),  # no wish: any key is fine
        ("", None, True),
        (KEY_ARN, KEY_ARN, True),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", KEY_ARN, True),  # bare key ID against the ARN RDS reports
        (KEY_ARN, KEY_ARN.replace("1234abcd", "9999ffff"), False),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", None, False),
    ],
)
def test_key_matches(wanted: str | None, current: str | None, matches: bool) -> None:
    assert mod.key_matches(wanted, current) is matches


def test_unmanaged_instance_is_switched_to_managed() -> None:
    assert mod.modification_needed({"DBInstanceStatus": "available"}, None) == {"ManageMasterUserPassword": True}


def test_unmanaged_instance_gets_the_wanted_key() -> None:
    assert mod.modification_needed({"MasterUserSecret": None}, KEY_ARN) == {
        "ManageMasterUserPassword": True,
        "MasterUserSecretKmsKeyId": KEY_ARN,
    }


def test_managed_instance_with_the_right_key_needs_nothing() -> None:
    assert mod.modification_needed(managed(), None) == {}
    assert mod.modification_needed(managed(), "1234abcd-12ab-34cd-56ef-1234567890ab") == {}


def test_managed_instance_with_another_key_is_re_keyed_only() -> None:
    other = KEY_ARN.replace("1234abcd", "9999ffff")
    assert mod.modification_needed(managed(), other) == {"MasterUserSecretKmsKeyId": other}


def test_result_reports_the_secret() -> None:
    assert mod.result_of(managed(status="rotating"), False) == {
        "changed": False,
        "secret_arn": SECRET_ARN,
        "secret_status": "rotating",
        "kms_key_id": KEY_ARN,
    }


def test_result_without_an_instance_is_empty_but_complete() -> None:
    assert mod.result_of(None, True) == {"changed": True, "secret_arn": "", "secret_status": "", "kms_key_id": ""}

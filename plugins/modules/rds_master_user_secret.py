#!/usr/bin/python
# Copyright: threetier.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Let RDS manage an instance's master user password in AWS Secrets Manager."""

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_master_user_secret
short_description: Let RDS keep an instance's master user password in AWS Secrets Manager
version_added: 1.0.0
description:
  - Turns on C(ManageMasterUserPassword) for an existing RDS DB instance, so that RDS generates the master
    user password, stores it in an AWS Secrets Manager secret and rotates it. The password is never seen by Ansible.
  - Exists because M(amazon.aws.rds_instance) has no option for it. Use M(amazon.aws.rds_instance) to create and
    configure the instance, then this module to hand the password over to RDS.
  - The change is always applied immediately; otherwise the secret would only exist after the next maintenance window.
  - Idempotent. In check mode nothing is modified; an instance that does not exist yet is reported as C(changed).
  - Turning the management off again is deliberately not supported (it needs a new password from somewhere).
author:
  - threetier.k8s maintainers (@threetier)
options:
  db_instance_identifier:
    description: Identifier of the DB instance.
    type: str
    required: true
    aliases: [id, instance_id]
  kms_key_id:
    description:
      - KMS key (ARN or key ID) that encrypts the secret. Empty means the account's C(aws/secretsmanager) key.
      - Give the key ARN or key ID, not an alias, so that the module can compare it with the key the instance reports.
    type: str
  wait:
    description: Wait until the instance is C(available) and the secret is C(active).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait when O(wait=true).
    type: int
    default: 1200
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Hand the master password of the app database over to RDS
  threetier.k8s.rds_master_user_secret:
    db_instance_identifier: threetier-prod
    kms_key_id: arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
  register: master_secret

- name: Read the credentials (never printed)
  ansible.builtin.set_fact:
    db_credentials: "{{ lookup('amazon.aws.secretsmanager_secret', master_secret.secret_arn) | from_json }}"
  no_log: true
"""

RETURN = r"""
secret_arn:
  description: ARN of the Secrets Manager secret that holds C(username) and C(password). Empty in check mode
    when the instance does not exist yet or the management is only about to be turned on.
  returned: always
  type: str
  sample: "arn:aws:secretsmanager:eu-central-1:111122223333:secret:rds!db-0b7d4e1f-abcd-1234-5678-9e0f1a2b3c4d-AbCdEf"
secret_status:
  description: Status of the secret as RDS reports it (C(creating), C(active), C(rotating), C(impaired)).
  returned: always
  type: str
  sample: active
kms_key_id:
  description: KMS key that encrypts the secret.
  returned: always
  type: str
  sample: "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
"""

import contextlib  # noqa: E402 (Ansible modules put their documentation first)
import time  # noqa: E402
from typing import Any  # noqa: E402

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore itself
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402

POLL_SECONDS = 5


def describe_instance(client: Any, module: AnsibleAWSModule, identifier: str) -> dict[str, Any] | None:
    """Return the instance as DescribeDBInstances reports it, or None when it does not exist."""
    try:
        result = client.describe_db_instances(aws_retry=True, DBInstanceIdentifier=identifier)
    except is_boto3_error_code("DBInstanceNotFound"):
        return None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe DB instance {identifier}")
    instances = result.get("DBInstances", [])
    return instances[0] if instances else None


def key_matches(wanted: str | None, current: str | None) -> bool:
    """True when the wanted KMS key (ARN or bare key ID; empty = any key) is the key the instance reports."""
    if not wanted:
        return True
    if not current:
        return False
    return current == wanted or current.split("/")[-1] == wanted.split("/")[-1]


def modification_needed(instance: dict[str, Any], kms_key_id: str | None) -> dict[str, Any]:
    """The ModifyDBInstance parameters that bring the instance to the wanted state (empty when it is there)."""
    secret = instance.get("MasterUserSecret") or {}
    if not secret.get("SecretArn"):
        params: dict[str, Any] = {"ManageMasterUserPassword": True}
        if kms_key_id:
            params["MasterUserSecretKmsKeyId"] = kms_key_id
        return params
    if not key_matches(kms_key_id, secret.get("KmsKeyId")):
        return {"MasterUserSecretKmsKeyId": kms_key_id}
    return {}


def wait_until_active(client: Any, module: AnsibleAWSModule, identifier: str, timeout: int) -> dict[str, Any]:
    """Poll until the instance is available and its secret is active; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        instance = describe_instance(client, module, identifier) or {}
        secret = instance.get("MasterUserSecret") or {}
        if instance.get("DBInstanceStatus") == "available" and secret.get("SecretStatus") == "active":
            return instance
        if time.monotonic() >= deadline:
            module.fail_json(
                msg=(
                    f"Timed out after {timeout}s waiting for DB instance {identifier} to be available with an "
                    f"active master user secret (instance: {instance.get('DBInstanceStatus')}, "
                    f"secret: {secret.get('SecretStatus')})"
                )
            )
        time.sleep(POLL_SECONDS)


def result_of(instance: dict[str, Any] | None, changed: bool) -> dict[str, Any]:
    """Module result built from the instance description."""
    secret = (instance or {}).get("MasterUserSecret") or {}
    return {
        "changed": changed,
        "secret_arn": secret.get("SecretArn", ""),
        "secret_status": secret.get("SecretStatus", ""),
        "kms_key_id": secret.get("KmsKeyId", ""),
    }


def main() -> None:
    """Entry point."""
    module = AnsibleAWSModule(
        argument_spec={
            "db_instance_identifier": {
                "type": "str",
                "required": True,
                "aliases": ["id", "instance_id"],
            },
            "kms_key_id": {"type": "str"},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 1200},
        },
        supports_check_mode=True,
    )
    identifier = module.params["db_instance_identifier"].lower()
    client = module.client("rds", retry_decorator=AWSRetry.jittered_backoff())

    instance = describe_instance(client, module, identifier)
    if instance is None:
        if module.check_mode:
            module.exit_json(**result_of(None, True))
        module.fail_json(msg=f"DB instance {identifier} does not exist; create it with amazon.aws.rds_instance first")

    params = modification_needed(instance, module.params["kms_key_id"])
    if not params:
        module.exit_json(**result_of(instance, False))
    if module.check_mode:
        module.exit_json(**result_of(instance, True))

    try:
        modified = client.modify_db_instance(
            aws_retry=True,
            DBInstanceIdentifier=identifier,
            ApplyImmediately=True,
            **params,
        )["DBInstance"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to let RDS manage the master user password of {identifier}")

    if module.params["wait"]:
        modified = wait_until_active(client, module, identifier, module.params["wait_timeout"])
    module.exit_json(**result_of(modified, True))


if __name__ == "__main__":
    main()

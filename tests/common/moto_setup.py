"""Sets up a fresh moto server (started with INITIAL_NO_AUTH_ACTION_COUNT=SETUP_REQUESTS)
for the aws-ecr source's tests, in exactly SETUP_REQUESTS unauthenticated requests, so
every request after them has its signature and IAM policy checked:

    python moto_setup.py ENDPOINT OUT_FILE

- user lockbox-ci with an access key and a policy allowing ecr:GetAuthorizationToken
  and sts:AssumeRole;
- role lockbox-push that lockbox-ci may assume, allowed ecr:GetAuthorizationToken;
- user lockbox-nobody with an access key and no policy.

Writes {"access_key_id", "secret_access_key", "nobody_key_id", "nobody_secret",
"role_arn"} to OUT_FILE (mode 0600).
"""

import json
import os
import sys

import boto3

SETUP_REQUESTS = 9


def main():
    endpoint, out = sys.argv[1], sys.argv[2]
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    allow = lambda actions: json.dumps(  # noqa: E731
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    )
    iam.create_user(UserName="lockbox-ci")  # 1
    key = iam.create_access_key(UserName="lockbox-ci")["AccessKey"]  # 2
    policy = iam.create_policy(  # 3
        PolicyName="lockbox-ci", PolicyDocument=allow(["ecr:GetAuthorizationToken", "sts:AssumeRole"])
    )
    iam.attach_user_policy(UserName="lockbox-ci", PolicyArn=policy["Policy"]["Arn"])  # 4
    account = policy["Policy"]["Arn"].split(":")[4]
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/lockbox-ci"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    role = iam.create_role(RoleName="lockbox-push", AssumeRolePolicyDocument=trust)["Role"]  # 5
    iam.put_role_policy(  # 6
        RoleName="lockbox-push", PolicyName="ecr", PolicyDocument=allow(["ecr:GetAuthorizationToken"])
    )
    iam.create_user(UserName="lockbox-nobody")  # 7
    nobody = iam.create_access_key(UserName="lockbox-nobody")["AccessKey"]  # 8
    iam.list_users()  # 9: the last free request; the next one is checked
    fd = os.open(out + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "access_key_id": key["AccessKeyId"],
                "secret_access_key": key["SecretAccessKey"],
                "nobody_key_id": nobody["AccessKeyId"],
                "nobody_secret": nobody["SecretAccessKey"],
                "role_arn": role["Arn"],
            },
            f,
        )
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()

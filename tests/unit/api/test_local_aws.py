"""moto in server mode and the table built from template.yaml's own properties."""

import threading

import boto3
import pytest
from botocore.config import Config

from local.aws import SHARD_ITERATOR_LIFETIME_S, ExpiringShardIterators, create_table_from_template, start_moto

ITEMS_PER_WRITER = 25


@pytest.fixture
def moto_server():
    handle = start_moto(port=0)
    yield handle
    handle.stop()


@pytest.fixture
def dynamodb(moto_server):
    return boto3.client("dynamodb", endpoint_url=moto_server.url, region_name="us-east-1")


def test_table_has_the_templates_keys_index_ttl_and_stream(template, dynamodb):
    # When the table is created twice (the second time it already exists)
    name = create_table_from_template(template, dynamodb)
    assert create_table_from_template(template, dynamodb) == name
    # Then it matches the template
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert name == "genai-chatbot-dev"
    assert [(key["AttributeName"], key["KeyType"]) for key in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == ("expires_at", "ENABLED")
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_environment_points_boto3_at_the_server(moto_server):
    environment = moto_server.environment()
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"] == moto_server.url
    assert environment["AWS_ENDPOINT_URL_S3"] == moto_server.url
    assert environment["AWS_DEFAULT_REGION"] == "us-east-1"


def test_concurrent_transactions_all_succeed(template, moto_server):
    # Given many writers running transactions on one table at once, without client retries
    # (moto on its own answers some of these with a 500: a transaction copies a table being changed)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    name = create_table_from_template(template, dynamodb)
    errors = []

    def write(writer: int) -> None:
        for item in range(ITEMS_PER_WRITER):
            try:
                dynamodb.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": name, "Item": {"pk": {"S": f"W#{writer}"}, "sk": {"S": f"I#{item}"}}}},
                        {"Put": {"TableName": name, "Item": {"pk": {"S": f"X#{writer}"}, "sk": {"S": f"I#{item}"}}}},
                    ]
                )
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Then every write landed
    assert errors == []
    assert dynamodb.scan(TableName=name, Select="COUNT")["Count"] == 8 * ITEMS_PER_WRITER * 2


def test_a_cancelled_transaction_leaves_every_item_it_touched_as_it_was(template, dynamodb):
    # Given a table with one item, and a transaction that updates it, puts a new item, then fails a condition
    table = create_table_from_template(template, dynamodb)
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "A"}, "sk": {"S": "META"}, "n": {"N": "1"}})
    items = [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": "A"}, "sk": {"S": "META"}},
                "UpdateExpression": "SET n = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            }
        },
        {"Put": {"TableName": table, "Item": {"pk": {"S": "B"}, "sk": {"S": "META"}}}},
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"pk": {"S": "C"}, "sk": {"S": "META"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ]

    # When it runs
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(TransactItems=items)

    # Then nothing it wrote stayed
    kept = dynamodb.get_item(TableName=table, Key={"pk": {"S": "A"}, "sk": {"S": "META"}}, ConsistentRead=True)
    assert kept["Item"]["n"] == {"N": "1"}
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": "B"}, "sk": {"S": "META"}})

    # And without the failing check, the same writes are applied
    dynamodb.transact_write_items(TransactItems=items[:2])
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "A"}, "sk": {"S": "META"}})["Item"]["n"] == {"N": "2"}
    assert "Item" in dynamodb.get_item(TableName=table, Key={"pk": {"S": "B"}, "sk": {"S": "META"}})


def test_shard_iterators_are_forgotten_once_older_than_dynamodb_streams_lets_them_live():
    # Given moto's store of shard iterators, holding one handed out now
    now = [0.0]
    iterators = ExpiringShardIterators(clock=lambda: now[0])
    iterators["first"] = "iterator 1"
    iterators["second"] = "iterator 2"
    # When another is handed out once the first two have outlived an iterator's lifetime
    now[0] = SHARD_ITERATOR_LIFETIME_S + 1
    iterators["third"] = "iterator 3"
    # Then only the young one is kept
    assert dict(iterators) == {"third": "iterator 3"}

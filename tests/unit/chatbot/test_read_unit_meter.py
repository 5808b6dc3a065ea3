"""The benchmark's read-unit meter counts what DynamoDB would bill for the reads a client makes."""

import boto3

from bench.read_units import ReadUnitMeter


def test_reads_are_billed_per_4kb_and_halved_when_eventually_consistent(moto_table):
    # Given a 5 KB item and a meter on the client that reads it
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.put_item(TableName=moto_table, Item={"pk": {"S": "P"}, "sk": {"S": "A"}, "text": {"S": "x" * 5000}})
    meter = ReadUnitMeter(client)

    # When it is read consistently, then by an eventually consistent query
    client.get_item(TableName=moto_table, Key={"pk": {"S": "P"}, "sk": {"S": "A"}}, ConsistentRead=True)
    after_get = meter.total
    client.query(
        TableName=moto_table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "P"}},
    )

    # Then the get is two units (5 KB rounds up to 8 KB) and the query half of that
    assert after_get == 2
    assert meter.total - after_get == 1

"""The one Lambda context the local gateway and the S3 pipeline poller hand to handlers."""

from local.lambda_context import LocalLambdaContext
from local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION


def test_context_names_the_function_and_counts_down_from_its_timeout():
    # Given / When a context for a 30 s function with 512 MB
    context = LocalLambdaContext("ConversationsFunction", timeout_s=30, memory_mb=512)

    # Then it carries what Lambda's does, and the time left is within the timeout
    assert context.invoked_function_arn == (
        f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:ConversationsFunction"
    )
    assert (context.memory_limit_in_mb, context.log_group_name) == (512, "/aws/lambda/ConversationsFunction")
    assert 0 < context.get_remaining_time_in_millis() <= 30_000


def test_each_invocation_has_its_own_request_id_and_time_left_never_goes_negative():
    first, second = (LocalLambdaContext("BatchSummarizeFunction", timeout_s=0, memory_mb=128) for _ in range(2))
    assert first.aws_request_id != second.aws_request_id
    assert first.get_remaining_time_in_millis() == 0

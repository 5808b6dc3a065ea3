"""The summary requests queue and its worker in template.yaml: what the code relies on."""

from local.lambda_runtime import FunctionDefinition


def test_the_summary_worker_reads_its_queue_one_request_at_a_time_and_knows_its_last_receive(template):
    # Given the queue and the worker as the template resolves them
    queue = template.resolve(template.resources["SummaryRequestsQueue"]["Properties"])
    worker = template.resolve(template.resources["SummarizeConversationFunction"]["Properties"])
    source = worker["Events"]["SummaryRequests"]["Properties"]
    # Then the worker recognises a message's last receive as the queue defines it (the request is marked failed)
    assert (
        int(worker["Environment"]["Variables"]["QUEUE_MAX_RECEIVE_COUNT"]) == queue["RedrivePolicy"]["maxReceiveCount"]
    )
    # And a message stays invisible for longer than an invocation may run
    assert queue["VisibilityTimeout"] > worker["Timeout"]
    # And one request per invocation, failures reported per message
    assert (source["BatchSize"], source["FunctionResponseTypes"]) == (1, ["ReportBatchItemFailures"])
    assert source["Queue"] == template.resolve({"Fn::GetAtt": ["SummaryRequestsQueue", "Arn"]})


def test_the_queues_are_encrypted_with_the_stacks_key_and_only_the_api_sends_to_them(template):
    key = template.resolve({"Ref": "ChatbotKey"})
    for logical_id in ("SummaryRequestsQueue", "SummaryRequestsDeadLetterQueue"):
        assert template.resolve(template.resources[logical_id]["Properties"]["KmsMasterKeyId"]) == key
    queue_arn = template.resolve({"Fn::GetAtt": ["SummaryRequestsQueue", "Arn"]})
    senders = [
        logical_id
        for logical_id in template.resources_of_type("AWS::Serverless::Function")
        if any(
            "sqs:SendMessage" in _actions(statement) and statement["Resource"] == queue_arn
            for policy in template.resolve(template.resources[logical_id]["Properties"].get("Policies") or [])
            for statement in policy.get("Statement", [])
        )
    ]
    assert senders == ["ConversationsFunction"]
    # And both functions that share its code are told where the queue is
    for function in ("ConversationsFunction", "ConversationsStreamFunction"):
        environment = FunctionDefinition.from_template(template, function).environment
        assert environment["SUMMARY_QUEUE_URL"] == template.physical_name("SummaryRequestsQueue")


def _actions(statement: dict) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else actions

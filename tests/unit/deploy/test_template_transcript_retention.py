"""template.yaml: transcript objects under incoming/, summaries/ and failed/ live as long as their job records."""

from __future__ import annotations

from chatbot.transcript_jobs.keys import FAILED_PREFIX, INCOMING_PREFIX, SUMMARIES_PREFIX

from local.template import DEFAULT_TEMPLATE_PATH, Template


def test_transcript_objects_expire_with_their_job_records():
    # Given a stage that keeps transcript jobs 30 days
    template = Template(DEFAULT_TEMPLATE_PATH, {"JobRetentionDays": "30"})
    rules = template.resolve(template.resources["TranscriptsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"])

    # When the bucket's lifecycle rules are read by prefix
    expiring = {
        rule.get("Prefix"): rule for rule in rules if rule["Status"] == "Enabled" and "ExpirationInDays" in rule
    }

    # Then the job records and every prefix a job writes expire after the same number of days
    for function in ("BatchSummarizeFunction", "TranscriptsApiFunction"):
        assert template.function_environment(function)["JOB_TTL_DAYS"] == "30", function
    for prefix in (INCOMING_PREFIX, SUMMARIES_PREFIX, FAILED_PREFIX):
        assert str(expiring[prefix]["ExpirationInDays"]) == "30", prefix
    # and parts of uploads that never completed are dropped too
    assert any(rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") for rule in rules)

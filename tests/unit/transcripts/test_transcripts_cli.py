"""The transcripts CLI's file selection and results table (uploading and following run end to end in integration)."""

import pytest

from local.transcripts import CliError, expand_paths, format_table, upload


def test_folders_files_and_globs_expand_to_each_file_once_in_order(tmp_path):
    # Given
    (tmp_path / "calls" / "march").mkdir(parents=True)
    (tmp_path / "calls" / "a.vtt").write_text("WEBVTT\n")
    (tmp_path / "calls" / "march" / "b.txt").write_text("Agent: hi\n")
    (tmp_path / "c.srt").write_text("1\n")

    # When
    files = expand_paths([str(tmp_path / "calls"), str(tmp_path / "*.srt"), str(tmp_path / "calls" / "a.vtt")])

    # Then names keep the folder structure below the folder given
    assert [name for _, name in files] == ["a.vtt", "march/b.txt", "c.srt"]


def test_a_pattern_that_matches_nothing_is_a_clear_error(tmp_path):
    # Given / When / Then
    with pytest.raises(CliError, match="no file matches"):
        expand_paths([str(tmp_path / "*.json")])


def test_the_table_shows_summaries_and_failure_reasons_cut_to_the_width():
    # Given
    records = [
        {
            "job_id": "12345678-aaaa",
            "status": "succeeded",
            "format": "webvtt",
            "turns": 8,
            "chunk_count": 1,
            "filename": "call.vtt",
            "summary": "Customer: router drops.\nAgent: firmware updated. " * 5,
        },
        {
            "job_id": "87654321-bbbb",
            "status": "failed",
            "filename": "notes.txt",
            "failure_code": "unknown_format",
            "reason": "unknown transcript format",
        },
    ]

    # When
    table = format_table(records, width=100).splitlines()

    # Then
    assert table[0].split() == ["JOB", "STATUS", "FORMAT", "TURNS", "CHUNKS", "FILE", "SUMMARY", "/", "REASON"]
    assert table[1].startswith("12345678  succeeded") and table[1].endswith("…") and len(table[1]) <= 100
    assert table[2].endswith("[unknown_format] unknown transcript format")


def test_files_over_the_upload_limit_are_refused_before_anything_is_uploaded(tmp_path):
    # Given one file within the limit and one over it
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_bytes(b"Agent: hi\n")
    big.write_bytes(b"Agent: " + b"x" * 100 + b"\n")

    class NoAws:  # any AWS call would fail the test
        def client(self, service):
            raise AssertionError(f"{service} was called")

        def jobs(self):
            raise AssertionError("the job store was called")

    # When / Then the upload is refused as a whole, naming the file
    with pytest.raises(CliError, match=r"big\.txt"):
        upload(NoAws(), [(small, "small.txt"), (big, "big.txt")], "incoming/cli/", "cli", max_bytes=50)

"""Count what the reliability suite runs, for the counts block of docs/reliability.md.

Usage: ``python tests/reliability/reliability_counts.py`` prints the Markdown block;
``--json`` prints the numbers. The numbers come from pytest's own collection of this folder:

- faults survived: tests marked ``fault`` that are expected to pass;
- faults that expose a bug: tests marked ``fault`` that are strict xfails (a listed BUG);
- bad inputs tried: tests marked ``bad_input`` (one input each), of which the strict xfails are
  inputs sea-dist currently refuses badly (listed BUGs);
- data lost: fault tests that would have lost data; every fault test asserts byte-identical data
  or that every visible version verifies, so a passing suite means 0.

test_reliability_counts.py checks that the block in the docs equals this output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
START, END = "<!-- counts:start -->", "<!-- counts:end -->"


class _Collector:
    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


def count() -> dict[str, int]:
    """Collect the suite (without running it) and count its marked tests."""
    collector = _Collector()
    code = pytest.main(
        ["--collect-only", "-qq", "-p", "no:cacheprovider", "-m", "", str(HERE)],
        plugins=[collector],
    )
    if code != 0:
        raise SystemExit(f"collection failed with exit code {code}")

    def marked(item: pytest.Item, name: str) -> bool:
        return item.get_closest_marker(name) is not None

    counts: dict[str, Any] = {
        "tests": len(collector.items),
        "faults_survived": 0,
        "fault_bugs": 0,
        "bad_inputs": 0,
        "bad_input_bugs": 0,
    }
    for category in CATEGORIES.values():
        counts[category] = 0
    for item in collector.items:
        bug = marked(item, "xfail")
        if marked(item, "fault"):
            counts["fault_bugs" if bug else "faults_survived"] += 1
        if marked(item, "bad_input"):
            counts["bad_inputs"] += 1
            counts["bad_input_bugs"] += bug
            counts[_category(item)] += 1
    return counts


CATEGORIES = {
    "config": "configs",
    "cli": "command-line arguments",
    "registry": "registry references",
    "test_loader_refuses_bad_demonstrations": "demonstrations",
    "test_unknown_layers_and_sites_are_refused": "layers and sites on a model",
    "test_bad_request_gets_json_4xx": "HTTP requests",
    "test_bounded_config_is_refused": "configs",
    "test_bounded_config_through_other_commands": "configs",
    "test_run_refuses_before_any_work": "configs",
    "test_a_bad_timeout_setting_is_one_line": "command-line arguments",
    "test_store_location_is_refused": "store locations",
    "test_overwrite_refuses_a_store_holding_other_entries": "store locations",
    "test_commands_refuse_a_non_store_folder": "store locations",
    "test_bad_values_in_a_fit_output_are_refused": "artifact values",
    "test_an_alias_to_a_removed_version_is_named_with_a_working_fix": "registry state",
    "test_download_refuses_a_non_empty_destination": "registry state",
    "test_download_into_a_registry_version_folder_is_refused_even_with_overwrite": (
        "registry state"
    ),
    "test_no_query_writes_the_registry": "registry state",
    "test_no_http_query_writes_the_registry": "registry state",
    "test_forged_index_rows_are_never_shown": "registry state",
    "test_a_replaced_row_is_reported_with_reindex_as_the_fix": "registry state",
    "test_publish_into_the_http_api_is_refused_first": "configs",
    "test_static_file_server_is_refused_in_one_line": "HTTP answers (client side)",
    "test_static_file_server_download_writes_nothing": "HTTP answers (client side)",
    "test_endless_body_is_cut_at_the_limit": "HTTP answers (client side)",
    "test_announced_huge_body_is_refused_unread": "HTTP answers (client side)",
    "test_trickling_answer_has_a_time_limit": "HTTP answers (client side)",
    "test_answers_of_the_wrong_shape_are_refused": "HTTP answers (client side)",
    "test_download_reads_no_more_than_the_manifest_states": "HTTP answers (client side)",
    "test_download_cap_refuses_before_fetching_projections": "HTTP answers (client side)",
    "test_a_location_inside_the_copy_is_refused": "output locations",
    "test_a_relative_base_is_refused": "output locations",
    "test_commands_in_the_copy_refuse_relative_outputs": "output locations",
}


def _category(item: pytest.Item) -> str:
    name = getattr(item, "originalname", item.name)
    if name == "test_cli_refuses_bad_input":
        case_id = item.name.split("[", 1)[1]
        return CATEGORIES[case_id.split("-", 1)[0]]
    return CATEGORIES[name]


def markdown(counts: dict[str, int]) -> str:
    """The counts block of docs/reliability.md."""
    return "\n".join(
        [
            START,
            "| count | value |",
            "| --- | ---: |",
            f"| faults injected and survived | {counts['faults_survived']} |",
            f"| faults that expose a known bug (strict xfail) | {counts['fault_bugs']} |",
            f"| bad inputs tried | {counts['bad_inputs']} |",
            f"| ... of which refused badly today (strict xfail) | {counts['bad_input_bugs']} |",
            *(f"| ... {name} | {counts[name]} |" for name in dict.fromkeys(CATEGORIES.values())),
            "| data lost | 0 |",
            f"| tests in tests/reliability | {counts['tests']} |",
            END,
        ]
    )


if __name__ == "__main__":
    numbers = count()
    sys.stdout.flush()
    print(json.dumps(numbers) if "--json" in sys.argv else markdown(numbers))

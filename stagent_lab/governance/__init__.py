"""Governance: the permission cascade, rule patterns, and the inbox decisions they lead to."""

from stagent_lab.governance.cascade import SavedRule, evaluate, validate_rule
from stagent_lab.governance.index import RuleIndex, compile_rules
from stagent_lab.governance.rules import (
    TOOL_MAIN_FIELDS,
    Rule,
    parse_rule,
    rule_matches,
    suggest_rule,
)

__all__ = [
    "TOOL_MAIN_FIELDS",
    "Rule",
    "RuleIndex",
    "SavedRule",
    "compile_rules",
    "evaluate",
    "parse_rule",
    "rule_matches",
    "suggest_rule",
    "validate_rule",
]

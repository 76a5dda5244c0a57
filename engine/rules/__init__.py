"""The rule language: grammar -> parse (AST) -> check -> compile (predicates) -> evaluate.

grammar/barsafe.lark is the grammar; docs/rules.md the reference.
"""

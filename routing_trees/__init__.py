"""Routing trees: the customer-facing YAML format that says where calls go.

Loading validates with exact ``FILE:LINE:COL`` marks, compiling turns a tree
into a fast evaluator, and evaluating facts about one call yields a Decision
that carries the chosen rule's whole action tree with its dynamic branches.
"""

"""Agent Contact Management: calls offered to qualified operators (issue 6).

The sans-IO core, fed with configuration, events and a clock:

- ``model.py``: groups, tiers, operators, supervisors (frozen values);
- ``config.py``: ``customers.ID.acm`` read with ``FILE:LINE:COL`` problems;
- ``states.py``: one operator's states, as a table;
- ``strategies.py``: whom a waiting call is offered to, in what order;
- ``erlang.py``: Erlang C, the operators a service level needs.
"""

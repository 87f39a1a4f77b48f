"""The analytics queries (cost, outcomes, decisions): SQL built here, run read-only.

The functions take a reader (anything with ``query_df(sql, params)``): ``Lab`` passes one that
sends read-only SQL through the workspace contract, so analytics work the same in-process and
against the workspace service. ``stagent_lab.analytics`` re-exports them.
"""

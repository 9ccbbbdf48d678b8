"""The seeds' published tables as runnable reproduction plans (``python -m reidlab.reproduce TABLE``)."""

from reidlab.reproduce.plan import SYNTHETIC, PlannedCell, Requirement, describe_plan, plan_cell, plan_table
from reidlab.reproduce.run import reproduce, table_frame
from reidlab.reproduce.tables import TABLES, Cell, Table, get_table

__all__ = ["SYNTHETIC", "TABLES", "Cell", "PlannedCell", "Requirement", "Table", "describe_plan", "get_table",
           "plan_cell", "plan_table", "reproduce", "table_frame"]  # fmt: skip

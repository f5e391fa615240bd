"""The read path: snapshot -> filter -> (search -> merge) -> rows."""

"""The engagement lifecycle end to end on the real handlers, storage and Graph simulator."""

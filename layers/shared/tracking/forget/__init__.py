"""Forgetting people: the deletion steps the forget function runs off the events table's stream."""

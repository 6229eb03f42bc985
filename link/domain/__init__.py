"""Contains the pure logic of a link: the row lifecycle and the events."""

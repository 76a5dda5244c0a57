"""Readers, one per input format; ``load`` picks the right one."""

"""Helpers shared by the test modules: one place, imported, never copied.

A test module imports what it needs from here, never from another test
module (whose tests pytest would then collect twice in the reader's mind).
"""
